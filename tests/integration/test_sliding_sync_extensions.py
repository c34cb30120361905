"""Simplified sliding sync extensions: to_device (MSC3885), e2ee (MSC3884), account_data
(MSC3959), receipts (MSC3960) and typing (MSC3961), and their `lists` / `rooms` scoping.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e_keys import claim
from tests.helpers import MatrixApi, User
from tests.olm_device import OTK_ALGORITHM, OlmDevice
from tests.sliding_sync import (
    Connection,
    extension,
    room_list,
    room_of_two,
    rooms,
    subscription,
    woken,
)

pytestmark = pytest.mark.usefixtures("no_server_errors")

BOARD = "org.example.board"
ELSEWHERE = "org.example.elsewhere"  # a type no list asks for


def with_extensions(**extensions: dict[str, Any]) -> dict[str, Any]:
    return {"lists": {"all": room_list()}, "extensions": extensions}


async def send_to_device(api: MatrixApi, sender: User, recipient: User, txn: str,
                         content: dict[str, Any]) -> None:
    await api.ok("PUT", f"sendToDevice/org.example.ping/{txn}", token=sender.token,
                 json={"messages": {recipient.user_id: {recipient.device_id: content}}})


def contents(answer: dict[str, Any]) -> list[Any]:
    return [e["content"] for e in extension(answer, "to_device")["events"]]


# -- to_device ---------------------------------------------------------------------------------


async def test_to_device_is_delivered_until_since_acknowledges_it(api: MatrixApi) -> None:
    alice, bob, _ = await room_of_two(api)
    await send_to_device(api, alice, bob, "t1", {"n": 1})
    await send_to_device(api, alice, bob, "t2", {"n": 2})
    conn = Connection(api, bob, with_extensions(to_device={"enabled": True}))
    first = await conn.sync()
    assert contents(first) == [{"n": 1}, {"n": 2}]
    assert all(e["sender"] == alice.user_id for e in extension(first, "to_device")["events"])
    # Not acknowledged yet (no `since`): sent again.
    assert contents(await conn.sync()) == [{"n": 1}, {"n": 2}]
    conn.body["extensions"]["to_device"]["since"] = extension(first, "to_device")["next_batch"]
    acknowledged = await conn.sync()
    assert contents(acknowledged) == []
    await send_to_device(api, alice, bob, "t3", {"n": 3})
    conn.body["extensions"]["to_device"]["since"] = extension(
        acknowledged, "to_device")["next_batch"]
    assert contents(await conn.sync()) == [{"n": 3}]


async def test_to_device_is_per_device_and_paged_by_limit(api: MatrixApi) -> None:
    alice, bob, _ = await room_of_two(api)
    bob_phone = await api.login(bob)
    for i in range(5):
        await send_to_device(api, alice, bob, f"t{i}", {"n": i})
    assert contents(await Connection(api, bob_phone, with_extensions(
        to_device={"enabled": True})).sync()) == []
    conn = Connection(api, bob, with_extensions(to_device={"enabled": True, "limit": 2}))
    seen: list[Any] = []
    for _ in range(3):
        answer = await conn.sync()
        seen += contents(answer)
        conn.body["extensions"]["to_device"]["since"] = extension(
            answer, "to_device")["next_batch"]
    assert seen == [{"n": i} for i in range(5)]


async def test_a_disabled_extension_is_not_answered(api: MatrixApi) -> None:
    alice, bob, _ = await room_of_two(api)
    await send_to_device(api, alice, bob, "t1", {"n": 1})
    answer = await Connection(api, bob, with_extensions(to_device={"enabled": False})).sync()
    assert "to_device" not in (answer.get("extensions") or {})
    # Nothing was consumed: enabling it delivers the message.
    enabled = await Connection(api, bob, with_extensions(to_device={"enabled": True})).sync()
    assert contents(enabled) == [{"n": 1}]


# -- e2ee --------------------------------------------------------------------------------------


async def test_one_time_key_counts_and_fallback_key_types(api: MatrixApi) -> None:
    alice, bob, _ = await room_of_two(api)
    device = OlmDevice(api, bob)
    conn = Connection(api, bob, with_extensions(e2ee={"enabled": True}))
    empty = extension(await conn.sync(), "e2ee")
    assert empty["device_one_time_keys_count"].get(OTK_ALGORITHM, 0) == 0
    assert empty["device_unused_fallback_key_types"] == []
    await device.upload_ok(device_keys=device.device_keys(), one_time_keys=device.one_time_keys(5),
                           fallback_keys=device.fallback_key())
    e2ee = extension(await conn.sync(), "e2ee")
    assert e2ee["device_one_time_keys_count"][OTK_ALGORITHM] == 5
    assert e2ee["device_unused_fallback_key_types"] == [OTK_ALGORITHM]
    await claim(api, alice, device.wanted())
    assert extension(await conn.sync(), "e2ee")["device_one_time_keys_count"][OTK_ALGORITHM] == 4


async def test_device_lists_changed_wakes_and_left(api: MatrixApi) -> None:
    alice, bob, room_id = await room_of_two(api)
    conn = Connection(api, alice, with_extensions(e2ee={"enabled": True}))
    first = extension(await conn.sync(), "e2ee")
    assert first.get("device_lists", {}).get("changed", []) == []
    poll = await conn.waiting()
    device = OlmDevice(api, bob)
    await device.upload_ok(device_keys=device.device_keys())
    lists = extension(await woken(poll), "e2ee")["device_lists"]
    assert (lists["changed"], lists["left"]) == ([bob.user_id], [])
    quiet = extension(await conn.sync(), "e2ee").get("device_lists", {})
    assert quiet.get("changed", []) == [] and quiet.get("left", []) == []
    await api.ok("POST", f"rooms/{room_id}/leave", json={}, token=bob.token)
    lists = extension(await conn.sync(), "e2ee")["device_lists"]
    assert bob.user_id in lists["left"] and bob.user_id not in lists["changed"]


async def test_own_new_device_is_a_device_list_change(api: MatrixApi) -> None:
    alice, _, _ = await room_of_two(api)
    conn = Connection(api, alice, with_extensions(e2ee={"enabled": True}))
    await conn.sync()
    phone = OlmDevice(api, await api.login(alice))
    await phone.upload_ok(device_keys=phone.device_keys())
    assert alice.user_id in extension(await conn.sync(), "e2ee")["device_lists"]["changed"]


# -- account_data ------------------------------------------------------------------------------


async def test_global_account_data_initially_and_on_change(api: MatrixApi) -> None:
    alice = await api.register("alice")
    await api.ok("PUT", f"user/{alice.user_id}/account_data/org.example.a", token=alice.token,
                 json={"v": 1})
    conn = Connection(api, alice, {"extensions": {"account_data": {"enabled": True}}})
    first = extension(await conn.sync(), "account_data")
    assert {"type": "org.example.a", "content": {"v": 1}} in first["global"]
    assert extension(await conn.sync(), "account_data").get("global", []) == []
    poll = await conn.waiting()
    await api.ok("PUT", f"user/{alice.user_id}/account_data/org.example.a", token=alice.token,
                 json={"v": 2})
    changed = extension(await woken(poll), "account_data")
    assert changed["global"] == [{"type": "org.example.a", "content": {"v": 2}}]


async def test_room_account_data_for_rooms_in_the_response(api: MatrixApi) -> None:
    alice = await api.register("alice")
    listed = await api.create_room(alice, preset="public_chat")
    await api.send_message(alice, listed, "most recent")
    outside = await api.create_room(alice, preset="public_chat")
    await api.send_message(alice, listed, "most recent again")
    for room_id in (listed, outside):
        await api.ok("PUT", f"user/{alice.user_id}/rooms/{room_id}/account_data/org.example.r",
                     token=alice.token, json={"room": room_id})
    conn = Connection(api, alice, {
        "lists": {"top": room_list(ranges=[[0, 0]])},
        "extensions": {"account_data": {"enabled": True}},
    })
    first = extension(await conn.sync(), "account_data")
    assert set(first["rooms"]) == {listed}
    assert first["rooms"][listed] == [{"type": "org.example.r", "content": {"room": listed}}]
    await api.ok("PUT", f"user/{alice.user_id}/rooms/{listed}/account_data/org.example.r",
                 token=alice.token, json={"room": "changed"})
    changed = extension(await conn.sync(), "account_data")
    assert changed["rooms"] == {listed: [{"type": "org.example.r",
                                          "content": {"room": "changed"}}]}


# -- receipts and typing -----------------------------------------------------------------------


async def test_receipts_initially_and_in_deltas(api: MatrixApi) -> None:
    alice, bob, room_id = await room_of_two(api)
    event_id = await api.send_message(alice, room_id, "read me")
    await api.ok("POST", f"rooms/{room_id}/receipt/m.read/{event_id}", json={}, token=bob.token)
    await api.ok("POST", f"rooms/{room_id}/receipt/m.read.private/{event_id}", json={},
                 token=alice.token)
    conn = Connection(api, alice, with_extensions(receipts={"enabled": True}))
    first = extension(await conn.sync(), "receipts")["rooms"][room_id]
    assert bob.user_id in first["content"][event_id]["m.read"]
    assert alice.user_id in first["content"][event_id]["m.read.private"]  # one's own private
    bob_view = await Connection(api, bob, with_extensions(receipts={"enabled": True})).sync()
    assert "m.read.private" not in extension(bob_view, "receipts")["rooms"][room_id]["content"][
        event_id]
    assert room_id not in extension(await conn.sync(), "receipts").get("rooms", {})
    second = await api.send_message(bob, room_id, "and me")
    await api.ok("POST", f"rooms/{room_id}/receipt/m.read/{second}", json={}, token=bob.token)
    delta = extension(await conn.sync(), "receipts")["rooms"][room_id]
    assert set(delta["content"]) == {second}


async def test_typing_starts_and_stops(api: MatrixApi) -> None:
    alice, bob, room_id = await room_of_two(api)
    path = f"rooms/{room_id}/typing/{alice.user_id}"
    await api.ok("PUT", path, json={"typing": True, "timeout": 30000}, token=alice.token)
    conn = Connection(api, bob, with_extensions(typing={"enabled": True}))
    first = extension(await conn.sync(), "typing")["rooms"][room_id]
    assert first["content"]["user_ids"] == [alice.user_id]
    assert extension(await conn.sync(), "typing").get("rooms", {}) == {}  # sent once
    poll = await conn.waiting()
    await api.ok("PUT", path, json={"typing": False}, token=alice.token)
    stopped = extension(await woken(poll), "typing")["rooms"][room_id]
    assert stopped["content"]["user_ids"] == []


# -- scoping -----------------------------------------------------------------------------------


async def three_rooms(api: MatrixApi) -> tuple[User, User, dict[str, str]]:
    """alice and bob in three rooms: one plain (list "plain"), one of a custom type (list
    "boards"), and one of a type no list matches, only subscribed to; bob is typing and has
    read in each, alice has account data in each."""
    alice, bob = await api.register("alice"), await api.register("bob")
    found: dict[str, str] = {}
    kinds: list[tuple[str, dict[str, str]]] = [
        ("plain", {}), ("board", {"type": BOARD}), ("subscribed", {"type": ELSEWHERE}),
    ]
    for name, content in kinds:
        room_id = await api.create_room(alice, preset="public_chat", creation_content=content)
        await api.join(bob, room_id)
        event_id = await api.send_message(alice, room_id, name)
        await api.ok("POST", f"rooms/{room_id}/receipt/m.read/{event_id}", json={},
                     token=bob.token)
        await api.ok("PUT", f"rooms/{room_id}/typing/{bob.user_id}", token=bob.token,
                     json={"typing": True, "timeout": 30000})
        await api.ok("PUT", f"user/{alice.user_id}/rooms/{room_id}/account_data/org.example.r",
                     token=alice.token, json={})
        found[name] = room_id
    return alice, bob, found


def scoped_body(found: dict[str, str], scope: dict[str, Any]) -> dict[str, Any]:
    return {
        "lists": {
            "plain": room_list(filters={"room_types": [None]}),
            "boards": room_list(filters={"room_types": [BOARD]}),
        },
        "room_subscriptions": {found["subscribed"]: subscription()},
        "extensions": {name: {"enabled": True, **scope}
                       for name in ("typing", "receipts", "account_data")},
    }


EVERY = frozenset({"plain", "board", "subscribed"})


@pytest.mark.parametrize(("scope", "allowed"), [
    ({}, [EVERY]),
    ({"lists": ["*"], "rooms": ["*"]}, [EVERY]),
    ({"lists": ["boards"], "rooms": []}, [{"board"}]),
    ({"lists": ["plain", "boards"], "rooms": []}, [{"plain", "board"}]),
    # "*" in `rooms` is every subscribed room (MSC3575's extensions); Synapse takes every room of
    # the response. Element X leaves `lists` out, so both give it every room.
    ({"lists": [], "rooms": ["*"]}, [{"subscribed"}, EVERY]),
    ({"lists": [], "rooms": []}, [set()]),
])
async def test_lists_and_rooms_scope_the_room_extensions(
    api: MatrixApi, scope: dict[str, Any], allowed: list[set[str]]
) -> None:
    alice, _, found = await three_rooms(api)
    answer = await Connection(api, alice, scoped_body(found, scope)).sync()
    assert set(rooms(answer)) == set(found.values())
    outcomes = [{found[name] for name in names} for names in allowed]
    for name in ("typing", "receipts", "account_data"):
        assert set(extension(answer, name).get("rooms", {})) in outcomes, name


async def test_scoping_by_room_id(api: MatrixApi) -> None:
    alice, _, found = await three_rooms(api)
    body = scoped_body(found, {"lists": [], "rooms": [found["subscribed"], "!unknown:localhost"]})
    body["room_subscriptions"][found["board"]] = subscription()
    answer = await Connection(api, alice, body).sync()
    for name in ("typing", "receipts", "account_data"):
        assert set(extension(answer, name).get("rooms", {})) == {found["subscribed"]}, name
