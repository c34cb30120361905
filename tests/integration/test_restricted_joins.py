"""Restricted rooms on one server (client-server-api.md "Restricted rooms"): members of an
allowed room join with `/join`, this server naming the authorising user itself; nobody else
gets in, in particular not by sending their own member event as state with an authoriser of
their choosing (issue 22, item 1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest

from tests.helpers import MatrixApi, User

KINDS = [(rule, version) for rule in ("restricted", "knock_restricted") for version in ("11", "12")]
AUTHORISER = "join_authorised_via_users_server"


@dataclass
class Rooms:
    alice: User  # created both rooms
    space: str  # public: anyone may join it
    room: str  # restricted to the space's members
    secret: str  # a message sent before anyone else joined


async def restricted(api: MatrixApi, rule: str, version: str, **create: Any) -> Rooms:
    """Alice's public space, and her room `rule` restricts to its members (`create`: more of
    /createRoom's body)."""
    alice = await api.register("alice")
    space = await api.create_room(alice, preset="public_chat", room_version=version)
    room = await api.create_room(
        alice, preset="private_chat", room_version=version, room_alias_name="inner",
        initial_state=[{
            "type": "m.room.join_rules", "state_key": "",
            "content": {"join_rule": rule,
                        "allow": [{"type": "m.room_membership", "room_id": space}]},
        }], **create,
    )
    secret = await api.send_message(alice, room, "before anyone else came")
    return Rooms(alice, space, room, secret)


async def member_event(api: MatrixApi, viewer: User, room: str, user: User) -> dict[str, object]:
    """The content of `user`'s member event as `viewer` reads it ({} when there is none)."""
    status, body = await api.request(
        "GET", f"rooms/{quote(room)}/state/m.room.member/{quote(user.user_id)}",
        token=viewer.token,
    )
    assert status in (200, 404), body
    return body if status == 200 else {}


def own_member_path(room: str, user: User) -> str:
    return f"rooms/{quote(room)}/state/m.room.member/{quote(user.user_id)}"


@pytest.mark.parametrize(("rule", "version"), KINDS)
async def test_a_member_event_sent_as_state_is_no_way_in(
    api: MatrixApi, rule: str, version: str
) -> None:
    rooms = await restricted(api, rule, version)
    mallory = await api.register("mallory")
    status, body = await api.request(
        "PUT", own_member_path(rooms.room, mallory), token=mallory.token,
        json={"membership": "join", AUTHORISER: rooms.alice.user_id},
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), body
    assert await member_event(api, rooms.alice, rooms.room, mallory) == {}
    joined = await api.ok("GET", "joined_rooms", token=mallory.token)
    assert rooms.room not in joined["joined_rooms"]
    status, body = await api.request(
        "GET", f"rooms/{quote(rooms.room)}/messages", token=mallory.token,
        params={"dir": "b"},
    )
    assert status == 403, body
    status, body = await api.request(
        "GET", f"rooms/{quote(rooms.room)}/event/{quote(rooms.secret)}", token=mallory.token
    )
    assert status in (403, 404), body


@pytest.mark.parametrize(("rule", "version"), KINDS)
async def test_members_of_an_allowed_room_join_and_others_do_not(
    api: MatrixApi, rule: str, version: str
) -> None:
    rooms = await restricted(api, rule, version)
    server = rooms.alice.user_id.split(":", 1)[1]
    bob, carol, dan, eve = [await api.register(n) for n in ("bob", "carol", "dan", "eve")]
    for user in (bob, carol, dan):
        await api.join(user, rooms.space)
    # Each of the three ways to join; this server names the authoriser (Alice may invite).
    for user, path in ((bob, f"join/{quote(rooms.room)}"),
                       (carol, f"rooms/{quote(rooms.room)}/join"),
                       (dan, f"join/{quote('#inner:' + server)}")):
        answer = await api.ok("POST", path, token=user.token, json={})
        assert answer == {"room_id": rooms.room}
        content = await member_event(api, rooms.alice, rooms.room, user)
        assert content["membership"] == "join"
        assert content[AUTHORISER] == rooms.alice.user_id

    # Someone in none of the allowed rooms is refused, by /join and as state alike.
    status, body = await api.request("POST", f"join/{quote(rooms.room)}", token=eve.token,
                                     json={})
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), body
    assert await member_event(api, rooms.alice, rooms.room, eve) == {}


async def test_the_server_names_the_authoriser_whatever_the_client_says(
    api: MatrixApi,
) -> None:
    """A member of the allowed room who sends their join as state is let in like /join
    would, with the authoriser this server picks: the one the client named is dropped."""
    rooms = await restricted(api, "restricted", "12")
    bob = await api.register("bob")
    await api.join(bob, rooms.space)
    answer = await api.ok(
        "PUT", own_member_path(rooms.room, bob), token=bob.token,
        json={"membership": "join", "displayname": "Bob here", AUTHORISER: "@nobody:nowhere"},
    )
    event = await api.ok(
        "GET", f"rooms/{quote(rooms.room)}/event/{quote(answer['event_id'])}",
        token=rooms.alice.token,
    )
    assert event["content"] == {
        "membership": "join", "displayname": "Bob here", AUTHORISER: rooms.alice.user_id,
    }
    # Already joined, a change of display name needs no authoriser, and gets none.
    answer = await api.ok(
        "PUT", own_member_path(rooms.room, bob), token=bob.token,
        json={"membership": "join", "displayname": "Bob again", AUTHORISER: bob.user_id},
    )
    assert await member_event(api, rooms.alice, rooms.room, bob) == {
        "membership": "join", "displayname": "Bob again",
    }


async def test_no_user_of_this_server_may_authorise(api: MatrixApi) -> None:
    """The only local member who may invite left: a member of the allowed room is refused."""
    rooms = await restricted(api, "restricted", "11", power_level_content_override={"invite": 50})
    bob, carol = await api.register("bob"), await api.register("carol")
    for user in (bob, carol):
        await api.join(user, rooms.space)
    await api.join(bob, rooms.room)  # Bob stays, at power level 0 < the invite level 50
    await api.ok("POST", f"rooms/{quote(rooms.room)}/leave", token=rooms.alice.token, json={})
    status, body = await api.request("POST", f"join/{quote(rooms.room)}", token=carol.token,
                                     json={})
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), body
