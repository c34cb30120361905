"""Rooms of the older room versions shared by two Moot servers over TLS on loopback: created
on one, joined from the other, messages and state both ways, history from before the join
backfilled, and redactions, with every event ID in the form its version gives it; and what
is particular to rooms v1-v2 over federation (IDs carried in the PDU and chosen by a server
that must sign them)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from federation.client import path_segment
from homeserver.protocol.event_refs import is_event_id_for
from homeserver.protocol.hashing import compute_event_id
from homeserver.protocol.room_versions import get_room_version
from tests.federation_peers import Peers, eventually, join_and_wait
from tests.helpers import MatrixApi, User
from tests.shared_rooms import forge, send_pdus, shared_room, stored


async def _timeline(api: MatrixApi, user: User, room_id: str) -> list[dict[str, Any]]:
    """The room's events as `user` pages back through /messages (oldest first)."""
    page = await api.ok(
        "GET", f"rooms/{quote(room_id)}/messages", token=user.token,
        params={"dir": "b", "limit": "100"},
    )
    return list(reversed(page["chunk"]))


async def _event(api: MatrixApi, user: User, room_id: str, event_id: str) -> dict[str, Any]:
    status, body = await api.request(
        "GET", f"rooms/{quote(room_id)}/event/{quote(event_id, safe='')}", token=user.token
    )
    return body if status == 200 else {}


async def _has_message(api: MatrixApi, user: User, room_id: str, event_id: str) -> bool:
    return (await _event(api, user, room_id, event_id)).get("type") == "m.room.message"


async def _redacted(api: MatrixApi, user: User, room_id: str, event_id: str) -> bool:
    event = await _event(api, user, room_id, event_id)
    return bool(event) and event["content"] == {} and "redacted_because" in event["unsigned"]


async def _state(api: MatrixApi, user: User, room_id: str, path: str) -> dict[str, Any]:
    status, body = await api.request(
        "GET", f"rooms/{quote(room_id)}/state/{path}", token=user.token
    )
    return body if status == 200 else {}


@pytest.mark.parametrize("version", ["1", "2", "3", "4", "6", "8", "9"])
async def test_a_room_of_an_older_version_federates(
    version: str, peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    a, b = await peers.new("a"), await peers.new("b")
    api_a, api_b = a.api(peer_http), b.api(peer_http)
    alice, bob = await api_a.register("alice"), await api_b.register("bob")
    caps = await api_a.ok("GET", "capabilities", token=alice.token)
    assert caps["capabilities"]["m.room_versions"]["available"][version] == "stable"
    room_id = await api_a.create_room(alice, preset="public_chat", room_version=version)
    rv = get_room_version(version)
    before = [await api_a.send_message(alice, room_id, f"before {i}") for i in range(3)]

    await join_and_wait(api_b, bob, room_id, a, api_a, alice)
    create = await _state(api_b, bob, room_id, "m.room.create")
    assert create["room_version"] == version and create["creator"] == alice.user_id

    from_a = await api_a.send_message(alice, room_id, "hello from a")
    await eventually(lambda: _has_message(api_b, bob, room_id, from_a), "A's message on B")
    from_b = await api_b.send_message(bob, room_id, "hello from b")
    await eventually(lambda: _has_message(api_a, alice, room_id, from_b), "B's message on A")

    # State both ways: Alice's topic, Bob's display name in his member event.
    await api_a.ok("PUT", f"rooms/{quote(room_id)}/state/m.room.topic", token=alice.token,
                   json={"topic": f"room v{version}"})
    await eventually(
        lambda: _topic_is(api_b, bob, room_id, f"room v{version}"), "A's topic on B"
    )
    await api_b.ok(
        "PUT", f"rooms/{quote(room_id)}/state/m.room.member/{quote(bob.user_id)}",
        token=bob.token, json={"membership": "join", "displayname": "Bob of b"},
    )
    await eventually(
        lambda: _display_name_is(api_a, alice, room_id, bob.user_id, "Bob of b"),
        "Bob's display name on A",
    )

    # History from before B's join comes to B by backfilling from A.
    async def backfilled() -> bool:
        ids = [e["event_id"] for e in await _timeline(api_b, bob, room_id)]
        return all(event_id in ids for event_id in before)

    await eventually(backfilled, "the messages from before the join on B")

    # Each side redacts its own message; the other sees it redacted.
    await api_a.ok("PUT", f"rooms/{quote(room_id)}/redact/{quote(from_a, safe='')}/r1",
                   token=alice.token, json={})
    await eventually(lambda: _redacted(api_b, bob, room_id, from_a), "A's redaction on B")
    await api_b.ok("PUT", f"rooms/{quote(room_id)}/redact/{quote(from_b, safe='')}/r2",
                   token=bob.token, json={})
    await eventually(lambda: _redacted(api_a, alice, room_id, from_b), "B's redaction on A")

    # Every event either server holds has an ID of the room version's form.
    for api, user in ((api_a, alice), (api_b, bob)):
        ids = [e["event_id"] for e in await _timeline(api, user, room_id)]
        assert ids and all(is_event_id_for(i, rv) for i in ids), ids


async def _topic_is(api: MatrixApi, user: User, room_id: str, topic: str) -> bool:
    return (await _state(api, user, room_id, "m.room.topic")).get("topic") == topic


async def _display_name_is(
    api: MatrixApi, user: User, room_id: str, member: str, name: str
) -> bool:
    content = await _state(api, user, room_id, f"m.room.member/{quote(member)}")
    return content.get("displayname") == name


async def test_a_room_v1_event_needs_the_signature_of_the_server_its_id_names(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    room = await shared_room(peers, peer_http, room_version="1")
    bob = room.bob.user_id
    message = {"msgtype": "m.text", "body": "from b"}
    # b made the event, yet its ID names another server, which did not sign it.
    foreign, pdu = await forge(
        room, room.room_id, bob, "m.room.message", message, event_id="$x1:elsewhere.example"
    )
    assert "error" in (await send_pdus(room, pdu))[foreign]
    assert not await stored(room, foreign)
    # Its own ID, and a float in the content: canonical JSON of rooms v1-v5 admits it, so the
    # event travels (the transaction is signed and checked leniently) and is kept as sent.
    event_id, pdu = await forge(
        room, room.room_id, bob, "m.room.message", {**message, "weight": 1.5}
    )
    assert event_id.endswith(":" + room.b.name)
    assert (await send_pdus(room, pdu))[event_id] == {}
    assert await stored(room, event_id)
    served = (await room.ok("GET", f"/event/{path_segment(event_id)}"))["pdus"][0]
    assert served["event_id"] == event_id and served["content"]["weight"] == 1.5
    assert served["signatures"] == pdu["signatures"]


@pytest.mark.parametrize(("version", "carries_id"), [("1", True), ("2", True), ("4", False)])
async def test_served_events_carry_their_id_in_rooms_v1_v2_only(
    version: str, carries_id: bool, peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    room = await shared_room(peers, peer_http, room_version=version)
    event_id = await room.api.send_message(room.alice, room.room_id, "served")
    served = (await room.ok("GET", f"/event/{path_segment(event_id)}"))["pdus"][0]
    assert ("event_id" in served) is carries_id
    assert compute_event_id(served, room.version) == event_id
    # v1-v2 name their parents by [ID, reference hash] pairs, the others by ID.
    entries = served["prev_events"] + served["auth_events"]
    assert all(isinstance(e, list) is carries_id for e in entries)


@pytest.mark.parametrize(("version", "status"), [("1", 200), ("4", 400)])
async def test_make_join_without_ver_means_room_version_1(
    version: str, status: int, peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    """server-server-api.md make_join `ver`: "Defaults to [1]"."""
    room = await shared_room(peers, peer_http, room_version=version)
    got, body = await room.ask(
        "GET", f"/make_join/{room.room}/{path_segment(room.bob.user_id)}"
    )
    assert got == status, body
    if status == 200:
        assert body["room_version"] == "1" and "event_id" not in body["event"]
    else:
        assert body["errcode"] == "M_INCOMPATIBLE_ROOM_VERSION"


@pytest.mark.parametrize("version", ["1", "2"])
async def test_a_remote_user_invited_to_a_room_v1_v2_joins_it(
    version: str, peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    a, b = await peers.new("a"), await peers.new("b")
    api_a, api_b = a.api(peer_http), b.api(peer_http)
    alice, bob = await api_a.register("alice"), await api_b.register("bob")
    room_id = await api_b.create_room(bob, preset="private_chat", room_version=version)
    await api_b.invite(bob, room_id, alice)

    async def invited() -> bool:
        return room_id in (await api_a.sync(alice)).get("rooms", {}).get("invite", {})

    await eventually(invited, "the invite on A")
    await api_a.join(alice, quote(room_id))
    await eventually(
        lambda: _is_joined(api_b, bob, room_id, alice.user_id), "Alice's join on B"
    )


async def _is_joined(api: MatrixApi, user: User, room_id: str, member: str) -> bool:
    content = await _state(api, user, room_id, f"m.room.member/{quote(member)}")
    return content.get("membership") == "join"
