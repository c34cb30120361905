"""EDUs between two real Moot servers over TLS on loopback, both directions: typing, read
receipts, presence, send-to-device, device-list updates and cross-signing key updates, each
sent by a client of one server and observed by a client of the other through /sync.

The EDUs that reach a server are recorded on their way into its real handlers and checked
against the spec's EDU schemas. What a server refuses is in `test_federation_edus_inbound.py`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote

import aiohttp
import jsonschema
import referencing

from storage import e2e_keys as e2e_store
from tests.e2e_keys import upload_identity
from tests.edu_helpers import (
    changed,
    db,
    ephemeral,
    pair,
    record_edus,
    remote_stream,
    sync_until,
    token,
    typists,
)
from tests.federation_peers import Peers, eventually
from tests.helpers import SPEC_API, _retrieve
from tests.olm_device import OlmDevice

EDU_SCHEMAS = SPEC_API / "server-server" / "definitions" / "event-schemas"


def validate_edu(edu_type: str, content: dict[str, Any]) -> None:
    """An EDU against the spec's definition of its type."""
    registry: referencing.Registry[Any] = referencing.Registry(retrieve=_retrieve)  # type: ignore[call-arg]
    schema = {"$ref": (EDU_SCHEMAS / f"{edu_type}.yaml").as_uri()}
    edu = {"edu_type": edu_type, "content": content}
    jsonschema.Draft202012Validator(schema, registry=registry).validate(edu)


def of_type(seen: list[tuple[str, str, dict[str, Any]]], edu_type: str) -> list[dict[str, Any]]:
    return [content for _, t, content in seen if t == edu_type]


# ---- both directions, through the client APIs ------------------------------------------------


async def test_typing_reaches_the_other_server_both_ways(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    p = await pair(peers, peer_http)
    since_b = await token(p.api_b, p.bob)
    await p.api_a.ok(
        "PUT", f"rooms/{quote(p.room_id)}/typing/{quote(p.alice.user_id)}",
        json={"typing": True, "timeout": 30_000}, token=p.alice.token,
    )
    await sync_until(
        p.api_b, p.bob, since_b, lambda body: typists(body, p.room_id) == [p.alice.user_id],
        "Alice typing, on B",
    )
    [edu] = of_type(p.seen_by_b, "m.typing")
    assert edu == {"room_id": p.room_id, "user_id": p.alice.user_id, "typing": True}
    validate_edu("m.typing", edu)

    since_a = await token(p.api_a, p.alice)
    await p.api_b.ok(
        "PUT", f"rooms/{quote(p.room_id)}/typing/{quote(p.bob.user_id)}",
        json={"typing": True, "timeout": 30_000}, token=p.bob.token,
    )
    await sync_until(
        p.api_a, p.alice, since_a,
        lambda body: typists(body, p.room_id) == [p.alice.user_id, p.bob.user_id],
        "Bob typing beside Alice, on A",
    )

    since_b = await token(p.api_b, p.bob)
    await p.api_a.ok(
        "PUT", f"rooms/{quote(p.room_id)}/typing/{quote(p.alice.user_id)}",
        json={"typing": False}, token=p.alice.token,
    )
    await sync_until(
        p.api_b, p.bob, since_b, lambda body: typists(body, p.room_id) == [p.bob.user_id],
        "Alice stopping, on B",
    )


async def test_read_receipts_reach_the_other_server_both_ways(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    p = await pair(peers, peer_http)
    event_id = await p.api_a.send_message(p.alice, p.room_id, "read me")
    since_b = await token(p.api_b, p.bob)

    async def arrived_on_b() -> bool:
        status, _ = await p.api_b.request(
            "GET", f"rooms/{quote(p.room_id)}/event/{quote(event_id)}", token=p.bob.token
        )
        return status == 200

    await eventually(arrived_on_b, "the message on B")
    since_a = await token(p.api_a, p.alice)
    await p.api_b.ok(
        "POST", f"rooms/{quote(p.room_id)}/receipt/m.read/{quote(event_id)}", json={},
        token=p.bob.token,
    )
    receipt = await sync_until(
        p.api_a, p.alice, since_a, lambda body: ephemeral(body, p.room_id, "m.receipt"),
        "Bob's receipt, on A",
    )
    assert set(receipt[event_id]["m.read"]) == {p.bob.user_id}
    assert isinstance(receipt[event_id]["m.read"][p.bob.user_id]["ts"], int)
    [edu] = of_type(p.seen_by_a, "m.receipt")
    validate_edu("m.receipt", edu)

    # A private receipt stays on its server.
    await p.api_a.ok(
        "POST", f"rooms/{quote(p.room_id)}/receipt/m.read.private/{quote(event_id)}", json={},
        token=p.alice.token,
    )
    await p.api_a.ok(
        "POST", f"rooms/{quote(p.room_id)}/receipt/m.read/{quote(event_id)}",
        json={"thread_id": "main"}, token=p.alice.token,
    )
    receipt = await sync_until(
        p.api_b, p.bob, since_b,
        lambda body: (r := ephemeral(body, p.room_id, "m.receipt")) is not None
        and p.alice.user_id in r.get(event_id, {}).get("m.read", {}) and r,
        "Alice's receipt, on B",
    )
    assert receipt[event_id]["m.read"][p.alice.user_id]["thread_id"] == "main"
    assert "m.read.private" not in receipt[event_id]
    [edu] = of_type(p.seen_by_b, "m.receipt")
    assert set(edu[p.room_id]) == {"m.read"}
    validate_edu("m.receipt", edu)


async def test_presence_reaches_the_servers_sharing_a_room(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    p = await pair(peers, peer_http)
    since_b = await token(p.api_b, p.bob)
    await p.api_a.ok(
        "PUT", f"presence/{quote(p.alice.user_id)}/status",
        json={"presence": "unavailable", "status_msg": "making cupcakes"}, token=p.alice.token,
    )

    def alice_presence(body: dict[str, Any]) -> dict[str, Any] | None:
        for event in body["presence"]["events"]:
            if event["sender"] == p.alice.user_id and \
                    event["content"].get("status_msg") == "making cupcakes":
                content: dict[str, Any] = event["content"]
                return content
        return None

    content = await sync_until(p.api_b, p.bob, since_b, alice_presence, "Alice's presence on B")
    assert content["presence"] == "unavailable"
    status = await p.api_b.ok(
        "GET", f"presence/{quote(p.alice.user_id)}/status", token=p.bob.token
    )
    assert status["presence"] == "unavailable" and status["status_msg"] == "making cupcakes"
    updates = [u for edu in of_type(p.seen_by_b, "m.presence") for u in edu["push"]]
    assert {u["user_id"] for u in updates} == {p.alice.user_id}
    for edu in of_type(p.seen_by_b, "m.presence"):
        validate_edu("m.presence", edu)


async def test_an_active_users_presence_does_not_time_out_on_the_other_server(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    idle_ms = 3000
    p = await pair(peers, peer_http, overrides={"presence.idle_timeout_ms": idle_ms})

    async def alice_online_on_b() -> bool:
        status = await p.api_b.ok(
            "GET", f"presence/{quote(p.alice.user_id)}/status", token=p.bob.token
        )
        return bool(status["presence"] == "online")

    await p.api_a.sync(p.alice)  # Alice comes online
    await eventually(alice_online_on_b, "Alice online, on B")
    # Her state never changes while she keeps syncing, yet B keeps hearing she is there.
    until = time.monotonic() + 2.5 * idle_ms / 1000
    while time.monotonic() < until:
        await p.api_a.sync(p.alice, timeout=0)
        await asyncio.sleep(0.2)
    assert await alice_online_on_b()


async def test_to_device_reaches_a_remote_device_without_a_shared_room(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    a, b = await peers.new("a"), await peers.new("b")
    seen_by_b = record_edus(b)
    api_a, api_b = a.api(peer_http), b.api(peer_http)
    alice, bob = await api_a.register("alice"), await api_b.register("bob")
    since = await token(api_b, bob)
    body = {"messages": {bob.user_id: {bob.device_id: {"secret": 1}}}}
    path = "sendToDevice/m.test/txn1"
    await api_a.ok("PUT", path, json=body, token=alice.token)
    await api_a.ok("PUT", path, json=body, token=alice.token)  # a retry: the same message
    await api_a.ok(
        "PUT", "sendToDevice/m.test/txn2", json={"messages": {bob.user_id: {"*": {"n": 2}}}},
        token=alice.token,
    )

    received: list[dict[str, Any]] = []

    def both(body: dict[str, Any]) -> dict[str, Any] | None:
        received.extend(body["to_device"]["events"])
        return body if len(received) >= 2 else None

    last = await sync_until(api_b, bob, since, both, "Alice's messages on Bob's device")
    async def retry_arrived() -> bool:
        return len(of_type(seen_by_b, "m.direct_to_device")) == 3

    await eventually(retry_arrived, "the retried EDU on B")
    assert (await api_b.sync(bob, since=last["next_batch"]))["to_device"]["events"] == []
    assert received == [
        {"sender": alice.user_id, "type": "m.test", "content": {"secret": 1}},
        {"sender": alice.user_id, "type": "m.test", "content": {"n": 2}},
    ]
    edus = of_type(seen_by_b, "m.direct_to_device")
    for edu in edus:
        validate_edu("m.direct_to_device", edu)
    assert edus[0]["messages"] == body["messages"]
    assert len({e["message_id"] for e in edus}) == 2  # the retry kept its message_id


async def test_a_device_change_on_b_shows_in_a_clients_device_lists(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    p = await pair(peers, peer_http)
    since = await token(p.api_a, p.alice)
    device = OlmDevice(p.api_b, p.bob)
    await device.upload_ok(device_keys=device.device_keys())
    body = await sync_until(
        p.api_a, p.alice, since, lambda body: p.bob.user_id in changed(body) and body,
        "Bob's new keys, on A",
    )
    [first] = of_type(p.seen_by_a, "m.device_list_update")
    validate_edu("m.device_list_update", first)
    assert first["device_id"] == p.bob.device_id and first["deleted"] is False
    assert first["keys"]["keys"][device.key_id] == device.ed25519

    await p.api_b.ok(
        "PUT", f"devices/{quote(p.bob.device_id)}", json={"display_name": "Bob's phone"},
        token=p.bob.token,
    )
    await sync_until(
        p.api_a, p.alice, body["next_batch"], lambda body: p.bob.user_id in changed(body),
        "Bob's renamed device, on A",
    )
    second = of_type(p.seen_by_a, "m.device_list_update")[1]
    assert second["device_display_name"] == "Bob's phone"
    assert second["prev_id"] == [first["stream_id"]]
    # Both applied in sequence: A stands where B's device list is, without asking B.
    answer = await p.b.federation.e2e_keys.user_devices(p.bob.user_id)
    stream = await remote_stream(p.a, p.bob.user_id)
    assert stream == second["stream_id"] == answer["stream_id"]

    # Alice asks B for Bob's keys and finds the device as the EDU described it.
    keys = await p.api_a.ok(
        "POST", "keys/query", json={"device_keys": {p.bob.user_id: []}}, token=p.alice.token
    )
    assert keys["device_keys"][p.bob.user_id][p.bob.device_id]["unsigned"] == {
        "device_display_name": "Bob's phone"
    }


async def test_cross_signing_keys_of_a_b_user_reach_a(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    p = await pair(peers, peer_http)
    since = await token(p.api_a, p.alice)
    identity = await upload_identity(p.api_b, p.bob)
    await sync_until(
        p.api_a, p.alice, since, lambda body: p.bob.user_id in changed(body),
        "Bob's cross-signing keys, on A",
    )
    [edu] = of_type(p.seen_by_a, "m.signing_key_update")
    validate_edu("m.signing_key_update", edu)
    assert "user_signing_key" not in edu
    stored = await db(p.a).run(
        lambda c: e2e_store.get_cross_signing_keys(
            c, [p.bob.user_id], ("master", "self_signing", "user_signing")
        )
    )
    assert stored == {
        (p.bob.user_id, "master"): identity.master.key(),
        (p.bob.user_id, "self_signing"): identity.self_signing.key(signed_by=identity.master),
    }
