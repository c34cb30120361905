"""The member cap (`rooms.max_members`, 256 by default): acceptance tests over HTTP.

Acceptance criteria: a room holds at most `max_members` joined+invited members; the next join
or invite is refused with HTTP 403 and an error naming the limit; a leave, kick or ban frees a
seat; a createRoom whose invite list alone exceeds the cap is refused before anything is
created; and a configured cap (5 here) applies.

Seats are mostly filled with invites of user IDs nobody registered: an invite does not need
the invitee to exist, and registering hundreds of users (argon2, ~0.2 s each) would take
minutes. Users who must join are registered.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import aiohttp

from tests.helpers import MatrixApi, User

if TYPE_CHECKING:
    from tests.conftest import MakeServer

CAP = 256


def api_server(user: User) -> str:
    return user.user_id.split(":", 1)[1]


def ghosts(user: User, count: int) -> list[str]:
    """`count` user IDs on the same server as `user`, never registered."""
    return [f"@ghost{i}:{api_server(user)}" for i in range(count)]


async def register_all(api: MatrixApi, *names: str) -> list[User]:
    return list(await asyncio.gather(*(api.register(n) for n in names)))


async def seated(api: MatrixApi, viewer: User, room: str) -> int:
    """Joined plus invited members, as the room's member list reports them."""
    chunk = (await api.ok("GET", f"rooms/{room}/members", token=viewer.token))["chunk"]
    return sum(e["content"]["membership"] in ("join", "invite") for e in chunk)


async def join(api: MatrixApi, user: User, room: str) -> tuple[int, Any]:
    return await api.request("POST", f"join/{room}", json={}, token=user.token)


async def act(api: MatrixApi, user: User, room: str, action: str, target: str) -> tuple[int, Any]:
    return await api.request(
        "POST", f"rooms/{room}/{action}", json={"user_id": target}, token=user.token
    )


def assert_full(result: tuple[int, Any], cap: int) -> None:
    status, body = result
    assert status == 403, body
    assert body["errcode"] == "M_FORBIDDEN"
    assert str(cap) in body["error"], body


async def test_room_holds_exactly_256_and_seats_free_up(api: MatrixApi) -> None:
    alice, ann, ben, ida, oz = await register_all(api, "alice", "ann", "ben", "ida", "oz")
    # alice + ida + 252 invited ghosts = 254 seats.
    invite = [ida.user_id, *ghosts(alice, CAP - 4)]
    room = await api.create_room(alice, preset="public_chat", invite=invite)
    assert (await join(api, ann, room))[0] == 200
    assert (await join(api, ben, room))[0] == 200
    assert await seated(api, alice, room) == CAP

    assert_full(await join(api, oz, room), CAP)
    assert_full(await act(api, alice, room, "invite", oz.user_id), CAP)
    assert_full(await act(api, alice, room, "invite", "@late:" + api_server(alice)), CAP)
    # Someone already holding a seat (invited) may still join: the count does not change.
    assert (await join(api, ida, room))[0] == 200
    assert await seated(api, alice, room) == CAP

    # A leave frees a seat for the next join, which fills the room again.
    assert (await act(api, ben, room, "leave", ben.user_id))[0] == 200
    assert (await join(api, oz, room))[0] == 200
    assert_full(await join(api, ben, room), CAP)

    # A kick frees a seat.
    assert (await act(api, alice, room, "kick", oz.user_id))[0] == 200
    assert (await join(api, ben, room))[0] == 200
    assert_full(await join(api, oz, room), CAP)

    # A ban frees a seat; so does revoking an invite (a kick of an invited user).
    assert (await act(api, alice, room, "ban", ann.user_id))[0] == 200
    assert (await join(api, oz, room))[0] == 200
    assert (await act(api, alice, room, "kick", ghosts(alice, 1)[0]))[0] == 200
    assert (await act(api, alice, room, "invite", "@late:" + api_server(alice)))[0] == 200
    assert await seated(api, alice, room) == CAP


async def test_create_room_with_too_many_invitees_creates_nothing(api: MatrixApi) -> None:
    alice = await api.register("alice")
    existing = await api.create_room(alice)
    status, body = await api.request(
        "POST", "createRoom", json={"invite": ghosts(alice, CAP)}, token=alice.token
    )
    assert_full((status, body), CAP)
    assert await api.ok("GET", "joined_rooms", token=alice.token) == {"joined_rooms": [existing]}

    # The creator plus 255 invitees is exactly the cap, and allowed.
    full = await api.create_room(alice, invite=ghosts(alice, CAP - 1))
    assert await seated(api, alice, full) == CAP


async def test_configured_cap_of_five(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    server = await make_homeserver(overrides={"rooms.max_members": 5})
    api = MatrixApi(server.url, http)
    alice, ann, ben, cat, dan = await register_all(api, "alice", "ann", "ben", "cat", "dan")

    status, body = await api.request(
        "POST", "createRoom", json={"invite": ghosts(alice, 5)}, token=alice.token
    )
    assert_full((status, body), 5)
    room = await api.create_room(alice, preset="public_chat", invite=ghosts(alice, 2))
    assert (await join(api, ann, room))[0] == 200
    assert await seated(api, alice, room) == 4

    # Three users race for the last seat: the room lock lets exactly one in.
    results = await asyncio.gather(*(join(api, u, room) for u in (ben, cat, dan)))
    assert sorted(status for status, _ in results) == [200, 403, 403]
    for result in results:
        if result[0] == 403:
            assert_full(result, 5)
    assert await seated(api, alice, room) == 5


async def test_the_room_carries_its_limit_and_the_lower_limit_wins(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    """The limit is a state event every server in the room can read (content
    `{"max_members": N}`, written at creation from `rooms.max_members`); the effective limit
    is the lower of it and the local config."""
    server = await make_homeserver(overrides={"rooms.max_members": 5})
    api = MatrixApi(server.url, http)
    alice, ann, ben = await register_all(api, "alice", "ann", "ben")
    room = await api.create_room(alice, preset="public_chat")
    limit_path = f"rooms/{room}/state/org.moot.room.member_limit"
    assert await api.ok("GET", limit_path, token=alice.token) == {"max_members": 5}

    # The room's own limit lowered to 2: alice and ann fit, ben does not.
    await api.ok("PUT", limit_path, json={"max_members": 2}, token=alice.token)
    assert (await join(api, ann, room))[0] == 200
    assert_full(await join(api, ben, room), 2)
    # A seat freed by a leave is taken again.
    await api.ok("POST", f"rooms/{room}/leave", json={}, token=ann.token)
    assert (await join(api, ben, room))[0] == 200

    # Raised above the server's config, the config still caps it.
    await api.ok("PUT", limit_path, json={"max_members": 100}, token=alice.token)
    for invitee in (ann.user_id, *ghosts(alice, 2)):  # alice, ben + 3 = 5 seats
        status, body = await act(api, alice, room, "invite", invitee)
        assert status == 200, body
    assert_full(await act(api, alice, room, "invite", "@x:" + api_server(alice)), 5)
