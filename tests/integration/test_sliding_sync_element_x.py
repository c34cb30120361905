"""Simplified sliding sync the way Element X (matrix-rust-sdk) drives it: a "room-list"
connection whose one list starts at [0, 19] and grows, with account data, receipts and typing;
room subscriptions that preload 20 events of the rooms on screen; and an "encryption"
connection on the same device with to-device and e2ee only.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import MatrixApi
from tests.olm_device import OlmDevice
from tests.sliding_sync import (
    ELEMENT_X_STATE,
    ELEMENT_X_SUBSCRIPTION_STATE,
    Connection,
    bodies,
    count,
    expanded,
    extension,
    room_list,
    rooms,
    state_pairs,
    subscription,
    woken,
)

pytestmark = pytest.mark.usefixtures("no_server_errors")

ROOMS = 25


def room_list_body(end: int) -> dict[str, Any]:
    return {
        "lists": {"all_rooms": room_list(
            ranges=[[0, end]], timeline_limit=1, required_state=ELEMENT_X_STATE, filters={},
        )},
        "extensions": {
            "account_data": {"enabled": True},
            "receipts": {"enabled": True, "rooms": ["*"]},
            "typing": {"enabled": True},
        },
    }


async def test_the_room_list_grows_and_preloads_the_rooms_on_screen(api: MatrixApi) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    created = []
    for i in range(ROOMS):
        room_id = await api.create_room(bob, preset="public_chat", name=f"room {i}")
        await api.join(alice, room_id)
        for j in range(3):
            await api.send_message(bob, room_id, f"{i}.{j}")
        created.append(room_id)
    newest_first = created[::-1]

    room_list_conn = Connection(api, alice, room_list_body(19), conn_id="room-list")
    first = await room_list_conn.sync(timeout_ms=0)
    assert set(rooms(first)) == set(newest_first[:20])
    assert count(first, "all_rooms") == ROOMS
    for room_id, room in rooms(first).items():
        assert room["initial"] is True
        assert bodies(room) == [f"{created.index(room_id)}.2"]
        assert {("m.room.name", ""), ("m.room.create", ""), ("m.room.power_levels", ""),
                ("m.room.join_rules", ""), ("m.room.history_visibility", ""),
                ("m.room.member", alice.user_id), ("m.room.member", bob.user_id)} \
            <= state_pairs(room)

    # Growing: the next request covers every room; only the five not sent yet come.
    room_list_conn.body = room_list_body(99)
    grown = await room_list_conn.sync(timeout_ms=0)
    assert set(rooms(grown)) == set(newest_first[20:])

    # The room the user opens is subscribed with 20 events: it comes at once, expanded.
    opened = newest_first[0]
    room_list_conn.body = {**room_list_body(99), "room_subscriptions": {
        opened: subscription(timeline_limit=20, required_state=ELEMENT_X_SUBSCRIPTION_STATE)}}
    preloaded = rooms(await room_list_conn.sync(timeout_ms=0))[opened]
    assert bodies(preloaded)[-3:] == [f"{ROOMS - 1}.{j}" for j in range(3)]
    assert expanded(preloaded)

    # Then the loop long-polls: a message in an old room brings it back, with bob typing.
    oldest = created[0]
    poll = await room_list_conn.waiting()
    await api.send_message(bob, oldest, "news")
    answer = await woken(poll)
    assert bodies(rooms(answer)[oldest]) == ["news"]
    poll = await room_list_conn.waiting()
    await api.ok("PUT", f"rooms/{oldest}/typing/{bob.user_id}", token=bob.token,
                 json={"typing": True, "timeout": 30000})
    typing = extension(await woken(poll), "typing")["rooms"][oldest]
    assert typing["content"]["user_ids"] == [bob.user_id]


async def test_the_encryption_connection_runs_beside_the_room_list(api: MatrixApi) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    room_id = await api.create_room(bob, preset="private_chat")
    await api.invite(bob, room_id, alice)
    await api.join(alice, room_id)
    room_list_conn = Connection(api, alice, room_list_body(19), conn_id="room-list")
    encryption = Connection(api, alice, {"extensions": {
        "to_device": {"enabled": True}, "e2ee": {"enabled": True}}}, conn_id="encryption")
    await room_list_conn.sync()
    since = extension(await encryption.sync(), "to_device")["next_batch"]
    encryption.body["extensions"]["to_device"]["since"] = since

    poll = await encryption.waiting()
    device = OlmDevice(api, bob)
    await device.upload_ok(device_keys=device.device_keys())
    answer = await woken(poll)
    assert extension(answer, "e2ee")["device_lists"]["changed"] == [bob.user_id]
    assert rooms(answer) == {}

    poll = await encryption.waiting()
    await api.ok("PUT", "sendToDevice/m.room.encrypted/t1", token=bob.token, json={
        "messages": {alice.user_id: {alice.device_id: {"algorithm": "m.olm.v1", "n": 1}}}})
    events = extension(await woken(poll), "to_device")["events"]
    assert [(e["type"], e["content"]["n"]) for e in events] == [("m.room.encrypted", 1)]

    # The room list connection saw none of it and is still where it was.
    assert rooms(await room_list_conn.sync()) == {}
    event_id = await api.send_message(bob, room_id, "hi")
    assert [e["event_id"] for e in rooms(await room_list_conn.sync())[room_id]["timeline"]] \
        == [event_id]
