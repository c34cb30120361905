"""Rooms shared by Moot and a real Synapse over TLS on loopback, both ways.

A Synapse user joins a room that lives on Moot, and a Moot user joins a room that lives on
Synapse (room versions 10 and 12: v12 names the room by its create event's hash and leaves the
create event out of auth_events); messages and state changes then travel both ways. A user
joining a room with history reads back past the join, both ways (/backfill): on Moot the
history stays out of /sync and the current state, and what the room's history visibility hid
from Moot stays hidden. Typing and receipts cross; a message of a Synapse user banned on Moot
is soft-failed there and never reaches Moot's clients. One Synapse serves the module
(tests/synapse_peer.py); every test makes its own Moot server, users and rooms.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from tests.edu_helpers import ephemeral, sync_until, token, typists
from tests.federation_peers import Peer, Peers, eventually, joined_members
from tests.helpers import MatrixApi, User
from tests.synapse_peer import SynapsePeer
from tests.synapse_rooms import (
    bodies,
    equals,
    exchange_messages,
    has_message,
    join,
    messages,
    page_back,
    set_state,
    state_content,
    state_crosses_both_ways,
    synapse_user,
)


async def moot_with_user(peers: Peers, http: aiohttp.ClientSession) -> tuple[Peer, MatrixApi, User]:
    moot = await peers.new("moot")
    api = moot.api(http)
    return moot, api, await api.register("alice")


# --- a Synapse user in a room that lives on Moot ------------------------------------------------

@pytest.mark.parametrize("room_version", ["10", "12"])
async def test_a_synapse_user_joins_a_moot_room(
    peers: Peers, peer_http: aiohttp.ClientSession, synapse: SynapsePeer, room_version: str
) -> None:
    moot, api, alice = await moot_with_user(peers, peer_http)
    room_id = await api.create_room(alice, preset="public_chat", room_version=room_version)
    sapi, bob = await synapse_user(synapse, "bob")
    await join(sapi, bob, room_id, moot.name, "server_name")

    both = {alice.user_id, bob.user_id}
    await eventually(
        lambda: equals(joined_members(api, alice, room_id), both), "Bob's join on Moot"
    )
    assert await joined_members(sapi, bob, room_id) == both
    await exchange_messages((api, alice), (sapi, bob), room_id)

    # Moot's state change reaches Synapse; Synapse's (Bob's own member event) reaches Moot.
    await state_crosses_both_ways((api, alice), (sapi, bob), room_id)


# --- a Moot user in a room that lives on Synapse ------------------------------------------------

@pytest.mark.parametrize("room_version", ["10", "12"])
async def test_a_moot_user_joins_a_synapse_room(
    peers: Peers, peer_http: aiohttp.ClientSession, synapse: SynapsePeer, room_version: str
) -> None:
    _, api, alice = await moot_with_user(peers, peer_http)
    sapi, bob = await synapse_user(synapse, "bob")
    room_id = await sapi.create_room(bob, preset="public_chat", room_version=room_version)
    await sapi.ok(
        "PUT", f"rooms/{quote(room_id)}/state/m.room.topic", token=bob.token,
        json={"topic": "set on synapse"},
    )
    await join(api, alice, room_id, synapse.server_name)

    both = {alice.user_id, bob.user_id}
    assert await joined_members(api, alice, room_id) == both
    assert (await state_content(api, alice, room_id, "m.room.topic") or {}).get(
        "topic") == "set on synapse"
    await eventually(
        lambda: equals(joined_members(sapi, bob, room_id), both), "Alice's join on Synapse"
    )
    await exchange_messages((sapi, bob), (api, alice), room_id)

    await state_crosses_both_ways(
        (sapi, bob), (api, alice), room_id, topic="changed on synapse",
        displayname="Alice renamed",
    )


# --- history from before the join, fetched from Synapse ------------------------------------------

@pytest.mark.parametrize("room_version", ["10", "12"])
async def test_a_moot_user_reads_a_synapse_rooms_history_from_before_the_join(
    peers: Peers, peer_http: aiohttp.ClientSession, synapse: SynapsePeer, room_version: str
) -> None:
    _, api, alice = await moot_with_user(peers, peer_http)
    sapi, bob = await synapse_user(synapse, "bob")
    room_id = await sapi.create_room(bob, preset="public_chat", room_version=room_version)
    await set_state(sapi, bob, room_id, "m.room.topic", {"topic": "first topic"})
    history = [f"old message {i}" for i in range(20)]
    for text in history:
        await sapi.send_message(bob, room_id, text)
    await set_state(sapi, bob, room_id, "m.room.topic", {"topic": "second topic"})
    await join(api, alice, room_id, synapse.server_name)
    after = await sapi.send_message(bob, room_id, "after the join")
    await eventually(lambda: _found(api, alice, room_id, after), "the message after the join")
    since = await token(api, alice)

    # Back through the room in small pages, as a client scrolling up does: Moot asks
    # Synapse for more (/backfill) each time it reaches the oldest event it holds.
    seen = await page_back(api, alice, room_id, limit=5)
    texts = [e["content"].get("body") for e in seen if e["type"] == "m.room.message"]
    assert texts == [*history, "after the join"]
    assert seen[0]["type"] == "m.room.create"
    assert len({e["event_id"] for e in seen}) == len(seen)
    topics = [e for e in seen if e["type"] == "m.room.topic"]
    assert [e["content"]["topic"] for e in topics] == ["first topic", "second topic"]
    assert topics[1]["unsigned"]["prev_content"] == {"topic": "first topic"}
    # /context around an event from before the join, and on from its tokens.
    middle = next(e for e in seen if e["content"].get("body") == "old message 10")
    context = await api.ok(
        "GET", f"rooms/{quote(room_id)}/context/{quote(middle['event_id'])}", token=alice.token,
        params={"limit": "4"},
    )
    assert [e["content"]["body"] for e in context["events_before"]] == [
        "old message 9", "old message 8"]
    assert [e["content"]["body"] for e in context["events_after"]] == [
        "old message 11", "old message 12"]
    back = await messages(api, alice, room_id, **{"from": context["start"], "limit": "1"})
    on = await messages(api, alice, room_id, **{"from": context["end"], "limit": "1", "dir": "f"})
    assert [e["content"]["body"] for e in back["chunk"] + on["chunk"]] == [
        "old message 7", "old message 13"]
    for garbage in ("h1_not-an-event-id", f"h{2**64}_{after}", "hx_" + after):
        status, body = await api.request(
            "GET", f"rooms/{quote(room_id)}/messages", token=alice.token,
            params={"from": garbage},
        )
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), garbage
    # Forward from the start of the room, the same events in the same order.
    first = await messages(api, alice, room_id, dir="f", limit="100")
    assert [e["event_id"] for e in first["chunk"]] == [e["event_id"] for e in seen]

    # The history is old news: /sync does not hand it out, and the room's state is still the
    # state the join brought.
    body = await api.sync(alice, since=since, timeout=0)
    assert room_id not in body.get("rooms", {}).get("join", {})
    assert (await state_content(api, alice, room_id, "m.room.topic") or {}).get(
        "topic") == "second topic"
    assert await joined_members(api, alice, room_id) == {alice.user_id, bob.user_id}


async def test_a_synapse_user_reads_a_moot_rooms_history_from_before_the_join(
    peers: Peers, peer_http: aiohttp.ClientSession, synapse: SynapsePeer
) -> None:
    """The other way: Synapse backfills from Moot (Moot's /backfill and /state_ids)."""
    moot, api, alice = await moot_with_user(peers, peer_http)
    room_id = await api.create_room(alice, preset="public_chat")
    history = [f"old message {i}" for i in range(20)]
    for text in history:
        await api.send_message(alice, room_id, text)
    sapi, bob = await synapse_user(synapse, "bob")
    await join(sapi, bob, room_id, moot.name, "server_name")

    seen = await page_back(sapi, bob, room_id, limit=5)
    assert [e["content"].get("body") for e in seen if e["type"] == "m.room.message"] == history
    assert seen[0]["type"] == "m.room.create"


async def test_history_hidden_from_moot_before_the_join_stays_hidden(
    peers: Peers, peer_http: aiohttp.ClientSession, synapse: SynapsePeer
) -> None:
    _, api, alice = await moot_with_user(peers, peer_http)
    sapi, bob = await synapse_user(synapse, "bob")
    room_id = await sapi.create_room(bob, preset="public_chat", initial_state=[{
        "type": "m.room.history_visibility", "state_key": "",
        "content": {"history_visibility": "joined"},
    }])
    for i in range(5):
        await sapi.send_message(bob, room_id, f"for members only {i}")
    await join(api, alice, room_id, synapse.server_name)
    after = await sapi.send_message(bob, room_id, "after the join")
    await eventually(lambda: _found(api, alice, room_id, after), "the message after the join")

    seen = await page_back(api, alice, room_id, limit=3)
    assert [e["content"].get("body") for e in seen if e["type"] == "m.room.message"] == [
        "after the join"
    ]


# --- typing and receipts ----------------------------------------------------------------------

@dataclass
class Shared:
    """Alice of Moot and Bob of Synapse, both joined to a public room created on Moot."""

    moot: Peer
    api: MatrixApi
    alice: User
    sapi: MatrixApi
    bob: User
    room_id: str


async def shared_moot_room(
    peers: Peers, http: aiohttp.ClientSession, synapse: SynapsePeer
) -> Shared:
    moot, api, alice = await moot_with_user(peers, http)
    room_id = await api.create_room(alice, preset="public_chat")
    sapi, bob = await synapse_user(synapse, "bob")
    await join(sapi, bob, room_id, moot.name, "server_name")
    both = {alice.user_id, bob.user_id}
    await eventually(
        lambda: equals(joined_members(api, alice, room_id), both), "Bob's join on Moot"
    )
    return Shared(moot, api, alice, sapi, bob, room_id)


async def test_typing_crosses_both_ways(
    peers: Peers, peer_http: aiohttp.ClientSession, synapse: SynapsePeer
) -> None:
    s = await shared_moot_room(peers, peer_http, synapse)
    since = await token(s.sapi, s.bob)
    await s.api.ok("PUT", f"rooms/{quote(s.room_id)}/typing/{quote(s.alice.user_id)}",
                   json={"typing": True, "timeout": 30_000}, token=s.alice.token)
    await sync_until(s.sapi, s.bob, since,
                     lambda body: typists(body, s.room_id) == [s.alice.user_id],
                     "Alice typing, on Synapse")

    since = await token(s.api, s.alice)
    await s.sapi.ok("PUT", f"rooms/{quote(s.room_id)}/typing/{quote(s.bob.user_id)}",
                         json={"typing": True, "timeout": 30_000}, token=s.bob.token)
    await sync_until(s.api, s.alice, since,
                     lambda body: s.bob.user_id in (typists(body, s.room_id) or []),
                     "Bob typing, on Moot")
    since = await token(s.api, s.alice)
    await s.sapi.ok("PUT", f"rooms/{quote(s.room_id)}/typing/{quote(s.bob.user_id)}",
                         json={"typing": False}, token=s.bob.token)
    await sync_until(s.api, s.alice, since,
                     lambda body: typists(body, s.room_id) == [s.alice.user_id],
                     "Bob stopping, on Moot")


async def test_read_receipts_cross_both_ways(
    peers: Peers, peer_http: aiohttp.ClientSession, synapse: SynapsePeer
) -> None:
    s = await shared_moot_room(peers, peer_http, synapse)
    from_alice = await s.api.send_message(s.alice, s.room_id, "read me, Bob")
    await eventually(lambda: has_message(s.sapi, s.bob, s.room_id, "read me, Bob"),
                     "Alice's message on Synapse")
    since = await token(s.api, s.alice)
    await s.sapi.ok("POST", f"rooms/{quote(s.room_id)}/receipt/m.read/{quote(from_alice)}",
                         json={}, token=s.bob.token)
    receipt = await sync_until(
        s.api, s.alice, since,
        lambda body: _receipt(body, s.room_id, from_alice, s.bob.user_id), "Bob's receipt, on Moot",
    )
    assert isinstance(receipt["ts"], int)

    from_bob = await s.sapi.send_message(s.bob, s.room_id, "read me, Alice")
    await eventually(lambda: has_message(s.api, s.alice, s.room_id, "read me, Alice"),
                     "Bob's message on Moot")
    since = await token(s.sapi, s.bob)
    await s.api.ok("POST", f"rooms/{quote(s.room_id)}/receipt/m.read/{quote(from_bob)}",
                   json={}, token=s.alice.token)
    await sync_until(
        s.sapi, s.bob, since,
        lambda body: _receipt(body, s.room_id, from_bob, s.alice.user_id),
        "Alice's receipt, on Synapse",
    )


def _receipt(body: dict[str, Any], room_id: str, event_id: str, user_id: str) -> Any:
    content = ephemeral(body, room_id, "m.receipt") or {}
    return content.get(event_id, {}).get("m.read", {}).get(user_id)


# --- refusals ---------------------------------------------------------------------------------

async def test_a_message_of_a_synapse_user_banned_on_moot_is_soft_failed(
    peers: Peers, peer_http: aiohttp.ClientSession, synapse: SynapsePeer
) -> None:
    s = await shared_moot_room(peers, peer_http, synapse)
    await exchange_messages((s.api, s.alice), (s.sapi, s.bob), s.room_id)
    # Moot's outbound queue held back: Synapse does not learn of the ban, so it lets Bob post
    # on top of the state before it, as a server that missed the ban (or evades it) would.
    await s.moot.federation.outbound.sender.stop()
    await s.api.ok("POST", f"rooms/{quote(s.room_id)}/ban", token=s.alice.token,
                   json={"user_id": s.bob.user_id, "reason": "interop"})
    evading = await s.sapi.send_message(s.bob, s.room_id, "posted while banned")

    async def stored_as_soft_failed() -> bool:
        assert s.moot.hs is not None and s.moot.hs.db is not None
        row = await s.moot.hs.db.run(lambda c: c.fetchrow(
            "SELECT soft_failed, stream_ordering FROM events WHERE event_id = $1", evading
        ))
        return row is not None and row["soft_failed"] and row["stream_ordering"] is None

    await eventually(stored_as_soft_failed, "Bob's message, soft-failed on Moot")
    assert "posted while banned" not in await bodies(s.api, s.alice, s.room_id)
    timeline = (await s.api.sync(s.alice))["rooms"]["join"][s.room_id]["timeline"]["events"]
    assert evading not in {e["event_id"] for e in timeline}
    status, _ = await s.api.request(
        "GET", f"rooms/{quote(s.room_id)}/event/{quote(evading)}", token=s.alice.token
    )
    assert status == 404

    # Once the queue flows again Synapse learns of the ban and refuses Bob's next message.
    await s.moot.federation.outbound.sender.start()
    await eventually(lambda: _left_on_synapse(s), "the ban on Synapse")
    assert await _banned_on_synapse(s)
    status, body = await s.sapi.request(
        "PUT", f"rooms/{quote(s.room_id)}/send/m.room.message/late", token=s.bob.token,
        json={"msgtype": "m.text", "body": "still banned"},
    )
    assert status == 403, body


async def _left_on_synapse(s: Shared) -> bool:
    rooms = await s.sapi.ok("GET", "joined_rooms", token=s.bob.token)
    return s.room_id not in rooms["joined_rooms"]


async def _banned_on_synapse(s: Shared) -> bool:
    """Whether Bob's /sync on Synapse shows the room left, by his ban."""
    body = await s.sapi.sync(s.bob, filter=json.dumps({"room": {"include_leave": True}}))
    left = body.get("rooms", {}).get("leave", {})
    events = left.get(s.room_id, {}).get("timeline", {}).get("events", [])
    return any(
        e["type"] == "m.room.member" and e["state_key"] == s.bob.user_id
        and e["content"].get("membership") == "ban" for e in events
    )


async def _found(api: MatrixApi, user: User, room_id: str, event_id: str) -> bool:
    status, _ = await api.request(
        "GET", f"rooms/{quote(room_id)}/event/{quote(event_id)}", token=user.token
    )
    return status == 200
