"""/sync over HTTP: initial and incremental syncs, long-polling, filters, invites and leaves."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.helpers import MatrixApi, User, validate_response


def timeline(body: dict[str, Any], room_id: str, section: str = "join") -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = body["rooms"][section][room_id]["timeline"]["events"]
    return events


def bodies(events: list[dict[str, Any]]) -> list[str]:
    return [e["content"]["body"] for e in events if e["type"] == "m.room.message"]


def state_keys(events: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(e["type"], e["state_key"]) for e in events}


async def test_initial_sync_has_the_room_and_validates(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room_id = await api.create_room(alice, name="Tea")
    event_id = await api.send_message(alice, room_id, "hello")
    body = await api.sync(alice)
    validate_response("sync.yaml", "/sync", "get", 200, body)
    room = body["rooms"]["join"][room_id]
    events = room["timeline"]["events"]
    assert events[-1]["event_id"] == event_id
    assert "room_id" not in events[-1]
    assert events[-1]["unsigned"]["transaction_id"].startswith("t")
    everything = state_keys(room["state"]["events"]) | {
        (e["type"], e["state_key"]) for e in events if "state_key" in e
    }
    assert {("m.room.create", ""), ("m.room.member", alice.user_id), ("m.room.name", "")} \
        <= everything
    assert room["summary"]["m.joined_member_count"] == 1
    assert room["unread_notifications"] == {"notification_count": 0, "highlight_count": 0}
    assert body["next_batch"]


async def test_incremental_sync_returns_only_what_is_new(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room_id = await api.create_room(alice)
    other_room = await api.create_room(alice)
    first = await api.sync(alice)
    await api.send_message(alice, room_id, "one")
    await api.send_message(alice, room_id, "two")
    body = await api.sync(alice, since=first["next_batch"])
    validate_response("sync.yaml", "/sync", "get", 200, body)
    assert bodies(timeline(body, room_id)) == ["one", "two"]
    assert body["rooms"]["join"][room_id]["timeline"]["limited"] is False
    assert body["rooms"]["join"][room_id]["state"]["events"] == []
    assert other_room not in body["rooms"]["join"]
    empty = await api.sync(alice, since=body["next_batch"])
    assert empty["rooms"]["join"] == {}
    assert empty["next_batch"] == body["next_batch"]


async def test_long_poll_wakes_on_a_message(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room_id = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room_id)
    since = (await api.sync(bob))["next_batch"]
    poll = asyncio.create_task(api.sync(bob, since=since, timeout=20000))
    await api.send_message(alice, room_id, "wake up")
    body = await asyncio.wait_for(poll, 10)  # half the poll's timeout: the answer is the wake-up
    assert bodies(timeline(body, room_id)) == ["wake up"]


async def test_long_poll_times_out_empty(api: MatrixApi) -> None:
    alice = await api.register("alice")
    since = (await api.sync(alice))["next_batch"]
    body = await api.sync(alice, since=since, timeout=50)
    assert body["rooms"]["join"] == {} and body["next_batch"] == since


async def test_limited_timeline_has_prev_batch_and_state(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room_id = await api.create_room(alice, name="Big")
    since = (await api.sync(alice))["next_batch"]
    for i in range(5):
        await api.send_message(alice, room_id, f"m{i}")
    flt = json.dumps({"room": {"timeline": {"limit": 2}}})
    body = await api.sync(alice, since=since, filter=flt)
    room = body["rooms"]["join"][room_id]
    assert bodies(room["timeline"]["events"]) == ["m3", "m4"]
    assert room["timeline"]["limited"] is True
    assert room["timeline"]["prev_batch"]
    initial = await api.sync(alice, filter=flt)
    room = initial["rooms"]["join"][room_id]
    assert room["timeline"]["limited"] is True
    assert ("m.room.name", "") in state_keys(room["state"]["events"])
    assert ("m.room.create", "") in state_keys(room["state"]["events"])


async def test_timeline_types_and_senders_filters(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room_id = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room_id)
    await api.send_message(alice, room_id, "from alice")
    await api.send_message(bob, room_id, "from bob")
    status, created = await api.request(
        "POST", f"user/{alice.user_id}/filter", token=alice.token,
        json={"room": {"timeline": {"types": ["m.room.message"], "senders": [bob.user_id]}}},
    )
    assert status == 200 and isinstance(created["filter_id"], str)
    body = await api.sync(alice, filter=created["filter_id"])
    events = timeline(body, room_id)
    assert [e["sender"] for e in events] == [bob.user_id]
    assert bodies(events) == ["from bob"]
    inline = json.dumps({"room": {"timeline": {"not_types": ["m.room.message"]}}})
    body = await api.sync(alice, filter=inline)
    assert all(e["type"] != "m.room.message" for e in timeline(body, room_id))


async def test_lazy_loading_members(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    carol = await api.register("carol")
    # Named: an unnamed room's heroes are sent too (test_sync_details).
    room_id = await api.create_room(alice, preset="public_chat", name="Lazy")
    await api.join(bob, room_id)
    await api.join(carol, room_id)
    for i in range(3):
        await api.send_message(bob, room_id, f"b{i}")
    flt = json.dumps({
        "room": {"timeline": {"limit": 2}, "state": {"lazy_load_members": True}},
    })
    body = await api.sync(alice, filter=flt)
    members = {
        e["state_key"] for e in body["rooms"]["join"][room_id]["state"]["events"]
        if e["type"] == "m.room.member"
    }
    assert members == {alice.user_id, bob.user_id}


async def test_invite_section_has_stripped_state(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room_id = await api.create_room(alice, name="Secret")
    since = (await api.sync(bob))["next_batch"]
    poll = asyncio.create_task(api.sync(bob, since=since, timeout=20000))
    await api.invite(alice, room_id, bob)
    body = await asyncio.wait_for(poll, 10)
    validate_response("sync.yaml", "/sync", "get", 200, body)
    events = body["rooms"]["invite"][room_id]["invite_state"]["events"]
    keys = state_keys(events)
    assert ("m.room.create", "") in keys
    assert ("m.room.name", "") in keys
    assert ("m.room.member", alice.user_id) in keys
    invite = [e for e in events if e["type"] == "m.room.member" and e["state_key"] == bob.user_id]
    assert invite and invite[0]["content"]["membership"] == "invite"
    assert all(set(e) == {"type", "state_key", "content", "sender"} for e in events)
    assert room_id in (await api.sync(bob))["rooms"]["invite"]


async def test_join_after_since_gets_full_state(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room_id = await api.create_room(alice, preset="public_chat", name="Lobby")
    for i in range(3):
        await api.send_message(alice, room_id, f"m{i}")
    since = (await api.sync(bob))["next_batch"]
    await api.join(bob, room_id)
    flt = json.dumps({"room": {"timeline": {"limit": 1}}})
    body = await api.sync(bob, since=since, filter=flt)
    room = body["rooms"]["join"][room_id]
    assert ("m.room.name", "") in state_keys(room["state"]["events"])
    assert room["timeline"]["events"][-1]["state_key"] == bob.user_id


async def test_leave_and_kick_appear_in_leave_section(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room_id = await api.create_room(alice, preset="public_chat")
    kicked_room = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room_id)
    await api.join(bob, kicked_room)
    since = (await api.sync(bob))["next_batch"]
    await api.ok("POST", f"rooms/{room_id}/leave", json={}, token=bob.token)
    await api.ok(
        "POST", f"rooms/{kicked_room}/kick", json={"user_id": bob.user_id}, token=alice.token
    )
    await api.send_message(alice, room_id, "after bob left")
    body = await api.sync(bob, since=since)
    validate_response("sync.yaml", "/sync", "get", 200, body)
    left = timeline(body, room_id, "leave")
    assert left[-1]["content"]["membership"] == "leave"
    assert "after bob left" not in bodies(left)
    kicked = timeline(body, kicked_room, "leave")
    assert kicked[-1]["content"]["membership"] == "leave"
    assert kicked[-1]["sender"] == alice.user_id
    assert room_id not in body["rooms"]["join"]
    assert (await api.sync(bob))["rooms"]["leave"] == {}
    with_leave = await api.sync(bob, filter=json.dumps({"room": {"include_leave": True}}))
    assert {room_id, kicked_room} <= set(with_leave["rooms"]["leave"])


async def test_room_filter_excludes_rooms(api: MatrixApi) -> None:
    alice = await api.register("alice")
    kept = await api.create_room(alice)
    dropped = await api.create_room(alice)
    body = await api.sync(alice, filter=json.dumps({"room": {"not_rooms": [dropped]}}))
    assert kept in body["rooms"]["join"] and dropped not in body["rooms"]["join"]


async def test_bad_since_and_filter_params(api: MatrixApi) -> None:
    alice = await api.register("alice")

    async def sync_status(**params: str) -> tuple[int, Any]:
        return await api.request("GET", "sync", token=alice.token, params=params)

    for since in ("garbage", "s1_2_x", "s-1", "s" + "9" * 40, ""):
        status, body = await sync_status(since=since)
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), since
    for flt in ("{not json", '{"room": {"timeline": {"limit": "x"}}}', "abc", "[]"):
        status, body = await sync_status(filter=flt)
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), flt
    status, body = await sync_status(filter="12345")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    for key, value in (("timeout", "soon"), ("full_state", "maybe"), ("set_presence", "busy")):
        status, body = await sync_status(**{key: value})
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), key
    status, body = await api.request("GET", "sync")
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")


async def test_full_state_resends_state(api: MatrixApi, homeserver: Any) -> None:
    alice: User = await api.register("alice")
    room_id = await api.create_room(alice, name="Full")
    since = (await api.sync(alice))["next_batch"]
    body = await api.sync(alice, since=since, full_state="true")
    room = body["rooms"]["join"][room_id]
    assert ("m.room.name", "") in state_keys(room["state"]["events"]) | state_keys(
        [e for e in room["timeline"]["events"] if "state_key" in e]
    )
