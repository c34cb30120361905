"""/sync's `use_state_after` (spec v1.16) and the strict reading of boolean query parameters."""

from __future__ import annotations

from typing import Any

from tests.helpers import MatrixApi, validate_response


def keyed(events: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    return {(e["type"], e["state_key"]): e["event_id"] for e in events}


async def test_boolean_query_params_take_only_true_or_false(api: MatrixApi) -> None:
    alice = await api.register("alice")
    for params in (
        {"use_state_after": "0.0"}, {"use_state_after": "1"}, {"full_state": "True"},
        {"full_state": ""}, {"use_state_after": "yes"},
    ):
        status, body = await api.request("GET", "sync", token=alice.token, params=params)
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), (params, body)
    for value in ("true", "false"):
        await api.ok("GET", "sync", token=alice.token, params={"use_state_after": value})


async def test_initial_sync_state_after_is_the_state_at_the_end_of_the_timeline(
    api: MatrixApi,
) -> None:
    alice = await api.register("alice")
    room_id = await api.create_room(alice, name="Before")
    await api.send_message(alice, room_id, "hello")
    renamed = await api.ok(
        "PUT", f"rooms/{room_id}/state/m.room.name/", json={"name": "After"}, token=alice.token
    )
    body = await api.sync(alice, use_state_after="true")
    validate_response("sync.yaml", "/sync", "get", 200, body)
    room = body["rooms"]["join"][room_id]
    assert "state" not in room
    state = keyed(room["state_after"]["events"])
    # The rename is the timeline's last event and is in state_after all the same: a client
    # that asked for state_after takes no state from the timeline.
    assert room["timeline"]["events"][-1]["event_id"] == renamed["event_id"]
    assert state[("m.room.name", "")] == renamed["event_id"]
    assert {("m.room.create", ""), ("m.room.member", alice.user_id)} <= set(state)

    plain = (await api.sync(alice))["rooms"]["join"][room_id]
    assert "state_after" not in plain and "state" in plain


async def test_incremental_state_after_holds_only_what_changed(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room_id = await api.create_room(alice, preset="public_chat", name="Tea")
    since = (await api.sync(alice, use_state_after="true"))["next_batch"]
    await api.join(bob, room_id)
    topic = await api.ok(
        "PUT", f"rooms/{room_id}/state/m.room.topic/", json={"topic": "Leaves"},
        token=alice.token,
    )
    for i in range(5):
        await api.send_message(alice, room_id, f"m{i}")
    flt = '{"room": {"timeline": {"limit": 2}}}'
    body = await api.sync(alice, since=since, use_state_after="true", filter=flt)
    validate_response("sync.yaml", "/sync", "get", 200, body)
    room = body["rooms"]["join"][room_id]
    assert "state" not in room
    assert room["timeline"]["limited"] is True
    state = keyed(room["state_after"]["events"])
    assert state[("m.room.topic", "")] == topic["event_id"]
    assert ("m.room.member", bob.user_id) in state
    # Unchanged state is not resent.
    assert ("m.room.name", "") not in state and ("m.room.create", "") not in state

    # A room with nothing new in the window still answers state_after (empty), never state.
    since = body["next_batch"]
    await api.ok("PUT", f"rooms/{room_id}/typing/{alice.user_id}",
                 json={"typing": True, "timeout": 30000}, token=alice.token)
    body = await api.sync(alice, since=since, use_state_after="true")
    room = body["rooms"]["join"][room_id]
    assert room["state_after"] == {"events": []} and "state" not in room


async def test_left_room_state_after(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room_id = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room_id)
    since = (await api.sync(bob, use_state_after="true"))["next_batch"]
    await api.ok("POST", f"rooms/{room_id}/leave", json={}, token=bob.token)
    body = await api.sync(bob, since=since, use_state_after="true")
    validate_response("sync.yaml", "/sync", "get", 200, body)
    room = body["rooms"]["leave"][room_id]
    assert "state" not in room
    state = keyed(room["state_after"]["events"])
    assert state[("m.room.member", bob.user_id)] == room["timeline"]["events"][-1]["event_id"]


async def test_state_after_with_lazy_loaded_members_in_an_unnamed_room(api: MatrixApi) -> None:
    """Heroes of an unnamed room go into `state_after` when the client asked for it (they
    were put into a `state` section that did not exist: a 500 for every lazy-loading client
    of an unnamed DM)."""
    alice, bob = await api.register("alice"), await api.register("bob")
    room_id = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room_id)
    await api.send_message(alice, room_id, "after the join")  # the timeline holds only this
    lazy = '{"room": {"state": {"lazy_load_members": true}, "timeline": {"limit": 1}}}'
    body = await api.sync(alice, use_state_after="true", filter=lazy)
    room = body["rooms"]["join"][room_id]
    assert "state" not in room
    members = {e["state_key"] for e in room["state_after"]["events"]
               if e["type"] == "m.room.member"}
    assert bob.user_id in members
