"""Knocking on a room of another server (server-server-api "Knocking upon a room"): the
knocker's server asks a resident for make_knock, signs the template and hands it back with
send_knock, and keeps the `knock_room_state` it is answered with for the knocker's /sync
(`rooms.knock.knock_state`) and sliding sync (`knock_state`). The room's admins see the knock;
an invite accepts it and the knocker joins, or the knocker takes it back (make_leave/
send_leave)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from tests.federation_peers import Peer, Peers
from tests.helpers import MatrixApi, User, validate_response
from tests.sliding_sync import Connection, one_list, rooms

KNOCK_RULE = {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}


async def sync(api: MatrixApi, user: User, since: str | None = None) -> dict[str, Any]:
    body = await api.sync(user, **({"since": since} if since else {}), timeout=0)
    validate_response("sync.yaml", "/sync", "get", 200, body)
    return body


async def membership(api: MatrixApi, user: User, room_id: str, who: str) -> str | None:
    status, body = await api.request(
        "GET", f"rooms/{quote(room_id)}/state/m.room.member/{quote(who)}", token=user.token
    )
    return body.get("membership") if status == 200 else None


def own(events: list[dict[str, Any]], user: User) -> list[str]:
    return [e["content"]["membership"] for e in events
            if e["type"] == "m.room.member" and e["state_key"] == user.user_id]


async def two_servers(
    peers: Peers, peer_http: aiohttp.ClientSession, version: str
) -> tuple[Peer, MatrixApi, User, MatrixApi, User, str]:
    """Alice's knock-only room on A, with the alias #door:A, and Bob of B who is in none of
    B's rooms with it."""
    a, b = await peers.new("a"), await peers.new("b")
    api_a, api_b = a.api(peer_http), b.api(peer_http)
    alice, bob = await api_a.register("alice"), await api_b.register("bob")
    room_id = await api_a.create_room(
        alice, preset="private_chat", room_version=version, name="The door",
        room_alias_name="door", initial_state=[KNOCK_RULE],
    )
    return a, api_a, alice, api_b, bob, room_id


@pytest.mark.parametrize(("version", "by"), [("10", "alias"), ("12", "via")])
async def test_a_knock_through_another_server_is_seen_accepted_and_joined(
    peers: Peers, peer_http: aiohttp.ClientSession, version: str, by: str
) -> None:
    a, api_a, alice, api_b, bob, room_id = await two_servers(peers, peer_http, version)
    alice_since = (await sync(api_a, alice))["next_batch"]
    bob_since = (await sync(api_b, bob))["next_batch"]
    # A v12 room ID names no server: the client says which (`via`), or names the alias.
    target, params = (
        (f"#door:{a.name}", {}) if by == "alias" else (room_id, {"via": a.name})
    )
    answer = await api_b.ok("POST", f"knock/{quote(target)}", token=bob.token,
                            json={"reason": "let me in"}, params=params)
    validate_response("knocking.yaml", "/knock/{roomIdOrAlias}", "post", 200, answer)
    assert answer == {"room_id": room_id}

    body = await sync(api_b, bob, bob_since)
    assert room_id not in body["rooms"]["join"] and room_id not in body["rooms"]["invite"]
    state = body["rooms"]["knock"][room_id]["knock_state"]["events"]
    by_type = {e["type"]: e for e in state}
    assert by_type["m.room.name"]["content"]["name"] == "The door"
    assert by_type["m.room.join_rules"]["content"]["join_rule"] == "knock"
    assert own(state, bob) == ["knock"]
    bob_since = body["next_batch"]
    sliding = rooms(await Connection(api_b, bob, one_list()).sync())[room_id]
    assert own(sliding["knock_state"], bob) == ["knock"]
    assert sliding["name"] == "The door"
    # Bob previews the room he knocked on: B asks A, whose user's state his knock carries.
    preview = await api_b.ok("GET", f"/_matrix/client/v1/rooms/{quote(room_id)}/hierarchy",
                             token=bob.token)
    assert [(r["room_id"], r["name"]) for r in preview["rooms"]] == [(room_id, "The door")]

    assert await membership(api_a, alice, room_id, bob.user_id) == "knock"
    timeline = (await sync(api_a, alice, alice_since))["rooms"]["join"][room_id]["timeline"]
    knock = next(e for e in timeline["events"] if e["type"] == "m.room.member")
    assert (knock["state_key"], knock["content"]["membership"], knock["content"]["reason"]) \
        == (bob.user_id, "knock", "let me in")

    # Accepted: B countersigns the invite, and keeps it, before A's invite call returns.
    await api_a.invite(alice, room_id, bob)
    body = await sync(api_b, bob, bob_since)
    assert room_id not in body["rooms"]["knock"]
    assert own(body["rooms"]["invite"][room_id]["invite_state"]["events"], bob) == ["invite"]
    await api_b.ok("POST", f"join/{quote(room_id)}", token=bob.token, json={})
    assert await membership(api_a, alice, room_id, bob.user_id) == "join"
    assert room_id in (await api_b.ok("GET", "joined_rooms", token=bob.token))["joined_rooms"]


async def test_a_knock_on_a_room_of_another_server_can_be_taken_back(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    _, api_a, alice, api_b, bob, room_id = await two_servers(peers, peer_http, "11")
    await api_b.ok("POST", f"knock/{quote(room_id)}", token=bob.token, json={})
    bob_since = (await sync(api_b, bob))["next_batch"]

    await api_b.ok("POST", f"rooms/{quote(room_id)}/leave", token=bob.token, json={})
    # The leave went through A (make_leave/send_leave), not only B's own record of it.
    assert await membership(api_a, alice, room_id, bob.user_id) == "leave"
    left = (await sync(api_b, bob, bob_since))["rooms"]
    assert room_id not in left["knock"]
    assert own(left["leave"][room_id]["timeline"]["events"], bob) == ["leave"]


async def test_a_knock_no_server_takes_is_refused(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    """A room whose join rule does not allow knocking: the resident refuses make_knock, and the
    client is told so (403), with nothing kept on the knocker's server."""
    a, b = await peers.new("a"), await peers.new("b")
    api_a, api_b = a.api(peer_http), b.api(peer_http)
    alice, bob = await api_a.register("alice"), await api_b.register("bob")
    room_id = await api_a.create_room(alice, preset="private_chat", room_version="12")
    status, error = await api_b.request("POST", f"knock/{quote(room_id)}", token=bob.token,
                                        json={}, params={"via": a.name})
    assert (status, error["errcode"]) == (403, "M_FORBIDDEN"), error
    body = await sync(api_b, bob)
    assert room_id not in body["rooms"]["knock"]
