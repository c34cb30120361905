"""Inbound EDUs in hand-made transactions, signed and sent by a real peer's own federation
client: a gap in a user's device-list updates makes the receiver fetch the whole list; users
of another server, users outside the room or refused by the room's server ACL, and malformed
content change nothing and fail no transaction; a repeated to-device message arrives once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from storage import e2e_keys as e2e_store
from storage import presence as presence_store
from tests.e2e_keys import Identity, upload_identity
from tests.edu_helpers import (
    Pair,
    changed,
    db,
    ephemeral,
    pair,
    remote_stream,
    remote_stream_above,
    send_edus,
    sync_until,
    token,
    typists,
)
from tests.federation_peers import Peers, eventually
from tests.helpers import MatrixApi, User
from tests.olm_device import OlmDevice


async def test_a_gap_in_device_list_updates_makes_a_fetch_the_whole_list(
    peers: Peers, peer_http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    identities: list[Identity] = []

    async def cross_signing(api: MatrixApi, bob: User) -> None:
        # While Bob shares no room with A, nobody tells A about his keys.
        identities.append(await upload_identity(api, bob))

    p = await pair(peers, peer_http, before_join=cross_signing)
    [identity] = identities
    fetched: list[str] = []
    get_json = p.a.federation.outbound.client.get_json

    async def spy(destination: str, path: str, query: Any = None) -> Any:
        fetched.append(path)
        return await get_json(destination, path, query)

    monkeypatch.setattr(p.a.federation.outbound.client, "get_json", spy)
    since = await token(p.api_a, p.alice)
    await send_edus(p.b, p.a, {"edu_type": "m.device_list_update", "content": {
        "user_id": p.bob.user_id, "device_id": "LOST", "stream_id": 1_000_000,
        "prev_id": [999_999], "deleted": True,
    }})
    assert fetched == [f"/_matrix/federation/v1/user/devices/{quote(p.bob.user_id, safe='')}"]
    answer = await p.b.federation.e2e_keys.user_devices(p.bob.user_id)
    stream = await remote_stream(p.a, p.bob.user_id)
    assert stream == answer["stream_id"]
    master = await db(p.a).run(
        lambda c: e2e_store.get_cross_signing_keys(c, [p.bob.user_id], ("master",))
    )
    assert master == {(p.bob.user_id, "master"): identity.master.key()}
    await sync_until(
        p.api_a, p.alice, since, lambda body: p.bob.user_id in changed(body),
        "Bob's list changed, on A",
    )

    # The next real update builds on what the fetch said: applied without another fetch.
    device = OlmDevice(p.api_b, p.bob)
    await device.upload_ok(device_keys=device.device_keys())
    await eventually(
        lambda: remote_stream_above(p.a, p.bob.user_id, answer["stream_id"]),
        "B's next update applied on A",
    )
    assert len(fetched) == 1


async def test_edus_about_users_of_another_server_are_ignored(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    p = await pair(peers, peer_http)
    event_id = await p.api_a.send_message(p.alice, p.room_id, "hello")
    since = await token(p.api_a, p.alice)
    for user_id in (p.alice.user_id, "@eve:elsewhere.example"):
        await send_edus(
            p.b, p.a,
            {"edu_type": "m.typing",
             "content": {"room_id": p.room_id, "user_id": user_id, "typing": True}},
            {"edu_type": "m.receipt", "content": {p.room_id: {"m.read": {
                user_id: {"event_ids": [event_id], "data": {"ts": 1}}}}}},
            {"edu_type": "m.presence", "content": {"push": [
                {"user_id": user_id, "presence": "online", "last_active_ago": 5,
                 "status_msg": "forged"}]}},
            {"edu_type": "m.direct_to_device", "content": {
                "sender": user_id, "type": "m.test", "message_id": uuid.uuid4().hex,
                "messages": {p.alice.user_id: {"*": {"forged": True}}}}},
            {"edu_type": "m.device_list_update", "content": {
                "user_id": user_id, "device_id": "X", "stream_id": 5, "prev_id": []}},
            {"edu_type": "m.signing_key_update", "content": {
                "user_id": user_id, "master_key": {
                    "user_id": user_id, "usage": ["master"],
                    "keys": {"ed25519:" + "A" * 43: "A" * 43}}}},
        )
    await assert_nothing_reached_alice(p, since)
    eve = await db(p.a).run(
        lambda c: presence_store.get_presence(c, "@eve:elsewhere.example")
    )
    assert eve is None


async def assert_nothing_reached_alice(p: Pair, since: str) -> None:
    """Alice's client sees no typing, receipt, to-device message or device-list change from
    the hand-made EDUs, and A stored nothing about Bob's or Alice's keys from them."""
    initial = await p.api_a.sync(p.alice)
    assert typists(initial, p.room_id) is None
    receipts = ephemeral(initial, p.room_id, "m.receipt") or {}
    assert all(set(r.get("m.read", {})) <= {p.alice.user_id} for r in receipts.values())
    assert initial["to_device"]["events"] == []
    later = await p.api_a.sync(p.alice, since=since)
    assert later["device_lists"]["changed"] == []
    assert all(e["content"].get("status_msg") != "forged" for e in later["presence"]["events"])
    keys = await db(p.a).run(
        lambda c: e2e_store.get_cross_signing_keys(
            c, [p.alice.user_id, p.bob.user_id], ("master", "self_signing")
        )
    )
    assert keys == {}
    for user_id in (p.alice.user_id, p.bob.user_id):
        assert await remote_stream(p.a, user_id) is None


MALFORMED: list[Callable[[Pair, str], dict[str, Any]]] = [
    lambda p, e: {"edu_type": "m.typing", "content": "typing"},
    lambda p, e: {"edu_type": "m.typing",
                  "content": {"room_id": p.room_id, "user_id": p.bob.user_id, "typing": "yes"}},
    lambda p, e: {"edu_type": "m.typing", "content": {"room_id": p.room_id, "typing": True}},
    lambda p, e: {"edu_type": "m.receipt", "content": {p.room_id: "read"}},
    lambda p, e: {"edu_type": "m.receipt", "content": {p.room_id: {"m.read": {
        p.bob.user_id: {"event_ids": e, "data": {"ts": 1}}}}}},
    lambda p, e: {"edu_type": "m.receipt", "content": {p.room_id: {"m.read": {
        p.bob.user_id: {"event_ids": ["not an event"], "data": {"ts": 1}}}}}},
    lambda p, e: {"edu_type": "m.receipt", "content": {p.room_id: {"m.read": {
        p.bob.user_id: {"event_ids": [e], "data": {"ts": "now"}}}}}},
    lambda p, e: {"edu_type": "m.presence", "content": {"push": "online"}},
    lambda p, e: {"edu_type": "m.presence", "content": {"push": [
        {"user_id": p.bob.user_id, "presence": "dancing", "last_active_ago": 1}, 7]}},
    lambda p, e: {"edu_type": "m.presence", "content": {"push": [
        {"user_id": p.bob.user_id, "presence": "online", "last_active_ago": -1}]}},
    lambda p, e: {"edu_type": "m.direct_to_device", "content": {
        "sender": p.bob.user_id, "type": "m.test", "message_id": "m1", "messages": []}},
    lambda p, e: {"edu_type": "m.direct_to_device", "content": {
        "sender": p.bob.user_id, "type": 5, "message_id": "m2",
        "messages": {p.alice.user_id: {"*": {}}}}},
    lambda p, e: {"edu_type": "m.direct_to_device", "content": {
        "sender": p.bob.user_id, "type": "m.test", "message_id": "m3",
        "messages": {p.alice.user_id: {p.alice.device_id: "not an object"}}}},
    lambda p, e: {"edu_type": "m.device_list_update", "content": {
        "user_id": p.bob.user_id, "device_id": "D", "stream_id": "7"}},
    lambda p, e: {"edu_type": "m.device_list_update", "content": {
        "user_id": p.bob.user_id, "device_id": "D", "stream_id": 7, "prev_id": 6}},
    lambda p, e: {"edu_type": "m.device_list_update", "content": {
        "user_id": p.bob.user_id, "stream_id": 7}},
    lambda p, e: {"edu_type": "m.signing_key_update", "content": {
        "user_id": p.bob.user_id, "master_key": "key"}},
    lambda p, e: {"edu_type": "m.signing_key_update", "content": {
        "user_id": p.bob.user_id, "master_key": {
            "user_id": p.bob.user_id, "usage": ["self_signing"],
            "keys": {"ed25519:" + "A" * 43: "A" * 43}}}},
    lambda p, e: {"edu_type": "m.signing_key_update", "content": {
        "user_id": p.bob.user_id, "self_signing_key": {
            "user_id": p.bob.user_id, "usage": ["self_signing"],
            "keys": {"ed25519:" + "A" * 43: "A" * 43}}}},
    lambda p, e: {"edu_type": "m.unknown", "content": {"anything": True}},
    lambda p, e: {"content": {"no": "type"}},
]


async def test_malformed_edus_change_nothing_and_fail_no_transaction(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    p = await pair(peers, peer_http)
    event_id = await p.api_a.send_message(p.alice, p.room_id, "hello")
    since = await token(p.api_a, p.alice)
    for make in MALFORMED:
        assert await send_edus(p.b, p.a, make(p, event_id)) == {"pdus": {}}
    await assert_nothing_reached_alice(p, since)


async def test_inbound_room_edus_need_membership_and_the_server_acl(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    p = await pair(peers, peer_http)
    carol = await p.api_b.register("carol")  # of B, but not in the room
    event_id = await p.api_a.send_message(p.alice, p.room_id, "hello")
    await send_edus(
        p.b, p.a,
        {"edu_type": "m.typing",
         "content": {"room_id": p.room_id, "user_id": carol.user_id, "typing": True}},
        {"edu_type": "m.receipt", "content": {p.room_id: {"m.read": {
            carol.user_id: {"event_ids": [event_id], "data": {"ts": 1}}}}}},
        {"edu_type": "m.presence", "content": {"push": [
            {"user_id": carol.user_id, "presence": "online", "last_active_ago": 5}]}},
    )
    initial = await p.api_a.sync(p.alice)
    assert typists(initial, p.room_id) is None
    assert carol.user_id not in (ephemeral(initial, p.room_id, "m.receipt") or {}).get(
        event_id, {}).get("m.read", {})
    stored = await db(p.a).run(
        lambda c: presence_store.get_presence(c, carol.user_id)
    )
    assert stored is None

    # Bob is in the room, but the room's server ACL now refuses his server.
    await p.api_a.ok(
        "PUT", f"rooms/{quote(p.room_id)}/state/m.room.server_acl", token=p.alice.token,
        json={"allow": ["*"], "deny": [p.b.name.split(":")[0]], "allow_ip_literals": True},
    )
    await send_edus(p.b, p.a, {"edu_type": "m.typing", "content": {
        "room_id": p.room_id, "user_id": p.bob.user_id, "typing": True}})
    assert typists(await p.api_a.sync(p.alice), p.room_id) is None


async def test_a_repeated_to_device_edu_is_delivered_once(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    a, b = await peers.new("a"), await peers.new("b")
    api_a, api_b = a.api(peer_http), b.api(peer_http)
    alice, bob = await api_a.register("alice"), await api_b.register("bob")
    edu = {"edu_type": "m.direct_to_device", "content": {
        "sender": bob.user_id, "type": "m.room_key_request", "message_id": "hiezohf6Hoo7kaev",
        "messages": {alice.user_id: {alice.device_id: {"action": "request"}},
                     "@someone:elsewhere.example": {"*": {"lost": True}}},
    }}
    await send_edus(b, a, edu)
    await send_edus(b, a, edu)  # another transaction, the same message
    body = await api_a.sync(alice)
    assert body["to_device"]["events"] == [
        {"sender": bob.user_id, "type": "m.room_key_request", "content": {"action": "request"}}
    ]
