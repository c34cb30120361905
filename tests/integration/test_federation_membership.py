"""Memberships across Moot servers: invites of remote users (countersigned by their server),
rejecting a remote invite, leaving a remote room, and the room's member limit enforced at every
path another server can take into the room."""

from __future__ import annotations

from urllib.parse import quote

import aiohttp
from prometheus_client import REGISTRY

from federation.client import HttpResponseError
from tests.federation_peers import Peers, eventually, join_via
from tests.helpers import MatrixApi, User

LIMIT = {"rooms.max_members": 3}


async def _membership(api: MatrixApi, user: User, room_id: str, who: str) -> str | None:
    status, body = await api.request(
        "GET", f"rooms/{quote(room_id)}/state/m.room.member/{quote(who)}", token=user.token
    )
    return body.get("membership") if status == 200 else None


async def _invited_to(api: MatrixApi, user: User, room_id: str) -> list[dict[str, object]]:
    rooms = (await api.sync(user)).get("rooms", {}).get("invite", {})
    events: list[dict[str, object]] = rooms.get(room_id, {}).get("invite_state", {}).get(
        "events", []
    )
    return events


async def test_invite_a_remote_user_who_joins_then_leaves(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    a, b = await peers.new("a"), await peers.new("b")
    api_a, api_b = a.api(peer_http), b.api(peer_http)
    alice, bob = await api_a.register("alice"), await api_b.register("bob")
    room_id = await api_a.create_room(alice, preset="private_chat", name="secret")
    await api_a.ok("POST", f"rooms/{quote(room_id)}/invite", token=alice.token,
                   json={"user_id": bob.user_id})
    assert await _membership(api_a, alice, room_id, bob.user_id) == "invite"

    invite_state = await eventually(lambda: _invited_to(api_b, bob, room_id), "Bob's invite")
    assert {"m.room.name", "m.room.member"} <= {e["type"] for e in invite_state}
    # B knows nothing of the room but the invite: joining goes through the inviter's server.
    await api_b.ok("POST", f"rooms/{quote(room_id)}/join", token=bob.token, json={})
    await eventually(
        lambda: _is(api_a, alice, room_id, bob.user_id, "join"), "Bob's join on A"
    )
    await api_b.ok("POST", f"rooms/{quote(room_id)}/leave", token=bob.token, json={})
    await eventually(
        lambda: _is(api_a, alice, room_id, bob.user_id, "leave"), "Bob's leave on A"
    )
    joined = await api_b.ok("GET", "joined_rooms", token=bob.token)
    assert room_id not in joined["joined_rooms"]


async def test_a_remote_invite_can_be_rejected(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    a, b = await peers.new("a"), await peers.new("b")
    api_a, api_b = a.api(peer_http), b.api(peer_http)
    alice, bob = await api_a.register("alice"), await api_b.register("bob")
    room_id = await api_a.create_room(alice, preset="private_chat")
    await api_a.ok("POST", f"rooms/{quote(room_id)}/invite", token=alice.token,
                   json={"user_id": bob.user_id})
    await eventually(lambda: _invited_to(api_b, bob, room_id), "Bob's invite")
    await api_b.ok("POST", f"rooms/{quote(room_id)}/leave", token=bob.token, json={})
    await eventually(
        lambda: _is(api_a, alice, room_id, bob.user_id, "leave"), "the rejection on A"
    )
    left = (await api_b.sync(bob))["rooms"].get("invite", {})
    assert room_id not in left


async def test_the_member_limit_holds_across_servers(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    a = await peers.new("a", overrides=LIMIT)
    b = await peers.new("b")  # a larger limit of its own: the room's lower one applies
    api_a, api_b = a.api(peer_http), b.api(peer_http)
    alice = await api_a.register("alice")
    bobs = [await api_b.register(f"bob{i}") for i in range(3)]
    room_id = await api_a.create_room(alice, preset="public_chat")
    await join_via(api_b, bobs[0], room_id, a)
    await join_via(api_b, bobs[1], room_id, a)  # exactly full: 3 of 3

    # One over: refused by A's make_join, and B passes the refusal on.
    status, body = await api_b.request(
        "POST", f"join/{quote(room_id)}", token=bobs[2].token, json={},
        params={"via": a.name},
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), body
    assert "full" in body["error"]
    # B is in the room now; a join through B is refused by B itself.
    status, body = await api_b.request(
        "POST", f"rooms/{quote(room_id)}/join", token=bobs[2].token, json={}
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), body
    # An invite from A of a B user: refused before any server is asked.
    carol = await api_b.register("carol")
    status, body = await api_a.request(
        "POST", f"rooms/{quote(room_id)}/invite", token=alice.token,
        json={"user_id": carol.user_id},
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), body

    # A seat freed by a leave on B is a seat for the next.
    await api_b.ok("POST", f"rooms/{quote(room_id)}/leave", token=bobs[1].token, json={})
    await eventually(
        lambda: _is(api_a, alice, room_id, bobs[1].user_id, "leave"), "the leave on A"
    )
    await api_b.ok("POST", f"rooms/{quote(room_id)}/join", token=bobs[2].token, json={})
    await eventually(
        lambda: _is(api_a, alice, room_id, bobs[2].user_id, "join"), "the new join on A"
    )


async def test_a_join_over_the_limit_from_another_server_is_soft_failed(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    """A and B are cut off from each other; each admits one more member to a room with one
    seat left. When they meet again, each soft-fails the other's join."""
    a, b = await peers.new("a", overrides=LIMIT), await peers.new("b", overrides=LIMIT)
    api_a, api_b = a.api(peer_http), b.api(peer_http)
    alice, alice2 = await api_a.register("alice"), await api_a.register("alice2")
    bob, bob2 = await api_b.register("bob"), await api_b.register("bob2")
    room_id = await api_a.create_room(alice, preset="public_chat")
    await join_via(api_b, bob, room_id, a)
    await eventually(lambda: _is(api_b, bob, room_id, alice.user_id, "join"), "the room on B")

    await a.federation.sender.stop()
    await b.federation.sender.stop()
    await api_a.ok("POST", f"rooms/{quote(room_id)}/join", token=alice2.token, json={})
    await api_b.ok("POST", f"rooms/{quote(room_id)}/join", token=bob2.token, json={})
    before = _soft_failed_room_full()
    await a.federation.sender.start()
    await b.federation.sender.start()

    async def both_soft_failed() -> bool:
        return _soft_failed_room_full() >= before + 2

    await eventually(both_soft_failed, "two soft-failed joins")
    assert await _membership(api_a, alice, room_id, bob2.user_id) is None
    assert await _membership(api_b, bob, room_id, alice2.user_id) is None


def _soft_failed_room_full() -> float:
    return REGISTRY.get_sample_value(
        "moot_events_soft_failed_total", {"reason": "room_full"}
    ) or 0.0


async def _is(api: MatrixApi, user: User, room_id: str, who: str, membership: str) -> bool:
    return await _membership(api, user, room_id, who) == membership


async def test_a_restricted_room_admits_members_of_an_allowed_room(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    a, b = await peers.new("a"), await peers.new("b")
    api_a, api_b = a.api(peer_http), b.api(peer_http)
    alice = await api_a.register("alice")
    member, stranger = await api_b.register("member"), await api_b.register("stranger")
    space = await api_a.create_room(alice, preset="public_chat")
    room_id = await api_a.create_room(alice, preset="private_chat", initial_state=[{
        "type": "m.room.join_rules", "state_key": "",
        "content": {"join_rule": "restricted",
                    "allow": [{"type": "m.room_membership", "room_id": space}]},
    }])
    await join_via(api_b, member, space, a)
    # A member of the allowed room joins: A's user authorises it and A countersigns.
    await join_via(api_b, member, room_id, a)
    await eventually(
        lambda: _is(api_a, alice, room_id, member.user_id, "join"), "the restricted join on A"
    )
    state = await api_b.ok(
        "GET", f"rooms/{quote(room_id)}/state/m.room.member/{quote(member.user_id)}",
        token=member.token,
    )
    assert state["join_authorised_via_users_server"] == alice.user_id
    # Someone in none of the allowed rooms is refused.
    status, body = await api_b.request(
        "POST", f"join/{quote(room_id)}", token=stranger.token, json={},
        params={"via": a.name},
    )
    assert status == 403, body


async def test_a_knock_on_a_full_room_is_refused(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    a, b = await peers.new("a", overrides=LIMIT), await peers.new("b")
    api_a = a.api(peer_http)
    alice, a2, a3 = [await api_a.register(n) for n in ("alice", "a2", "a3")]
    room_id = await api_a.create_room(alice, preset="private_chat", room_version="12",
                                      initial_state=[{"type": "m.room.join_rules",
                                                      "state_key": "",
                                                      "content": {"join_rule": "knock"}}])
    knock = (f"/_matrix/federation/v1/make_knock/{quote(room_id, safe='')}/"
             f"{quote('@bob:' + b.name, safe='')}")
    answer = await b.federation.client.get_json(a.name, knock, {"ver": ["12"]})
    assert answer["event"]["content"]["membership"] == "knock"
    for user in (a2, a3):  # invites take the two seats left
        await api_a.ok("POST", f"rooms/{quote(room_id)}/invite", token=alice.token,
                       json={"user_id": user.user_id})
    try:
        await b.federation.client.get_json(a.name, knock, {"ver": ["12"]})
    except HttpResponseError as e:
        assert (e.status, e.errcode) == (403, "M_FORBIDDEN")
    else:
        raise AssertionError("a knock on a full room was answered")
