"""/sync details real clients rely on: newly joined rooms, `timeline.limit: 0`, filter
validation and `event_format`, lazy-loaded members, `m.heroes`."""

from __future__ import annotations

import json
from typing import Any

from tests.helpers import MatrixApi, User, validate_response


def room_of(body: dict[str, Any], room_id: str) -> dict[str, Any]:
    room: dict[str, Any] = body["rooms"]["join"][room_id]
    return room


def members(room: dict[str, Any]) -> list[str]:
    return [e["state_key"] for e in room["state"]["events"] if e["type"] == "m.room.member"]


async def test_newly_joined_room_is_limited_and_has_full_state(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room_id = await api.create_room(alice, preset="public_chat", name="Lobby")
    for i in range(5):
        await api.send_message(alice, room_id, f"m{i}")
    flt = json.dumps({"room": {"timeline": {"limit": 3}}})
    since = (await api.sync(bob, filter=flt))["next_batch"]
    await api.join(bob, room_id)
    await api.send_message(alice, room_id, "after")
    room = room_of(await api.sync(bob, since=since, filter=flt), room_id)
    timeline = room["timeline"]
    # Only two events since `since`, but the room's history before them is not in the
    # timeline: limited, as an initial sync of the room would be.
    assert timeline["limited"] is True
    assert [e["type"] for e in timeline["events"]] == ["m.room.message", "m.room.member",
                                                       "m.room.message"]
    keys = {(e["type"], e["state_key"]) for e in room["state"]["events"]}
    assert {("m.room.create", ""), ("m.room.name", ""), ("m.room.member", alice.user_id),
            ("m.room.join_rules", ""), ("m.room.power_levels", "")} <= keys


async def test_timeline_limit_zero_is_valid(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room_id = await api.create_room(alice, name="Zero")
    await api.send_message(alice, room_id, "hello")
    flt = {"room": {"timeline": {"limit": 0}}}
    created = await api.ok("POST", f"user/{alice.user_id}/filter", json=flt, token=alice.token)
    for param in (json.dumps(flt), created["filter_id"]):
        body = await api.sync(alice, filter=param)
        room = room_of(body, room_id)
        assert room["timeline"]["events"] == []
        assert room["timeline"]["limited"] is True
        assert ("m.room.name", "") in {(e["type"], e["state_key"]) for e in room["state"]["events"]}


async def test_invalid_filters_are_refused(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bad_filters: list[Any] = [
        {"event_format": "html"}, {"room": {"timeline": {"limit": "ten"}}},
        {"room": {"timeline": {"limit": -1}}}, {"room": {"state": {"types": "m.room.name"}}},
        {"room": {"timeline": {"senders": ["not a user"]}}},
        {"room": {"rooms": ["not a room"]}}, {"presence": {"not_senders": ["alice"]}},
        {"room": {"timeline": {"lazy_load_members": "yes"}}},
    ]
    for bad in bad_filters:
        status, body = await api.request(
            "POST", f"user/{alice.user_id}/filter", json=bad, token=alice.token
        )
        assert (status, body["errcode"]) == (400, "M_BAD_JSON"), bad
        status, body = await api.request(
            "GET", "sync", token=alice.token, params={"filter": json.dumps(bad)}
        )
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), bad


async def test_federation_event_format(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room_id = await api.create_room(alice)
    event_id = await api.send_message(alice, room_id, "hello")
    body = await api.sync(alice, filter=json.dumps({"event_format": "federation"}))
    room = room_of(body, room_id)
    events = room["timeline"]["events"] + room["state"]["events"]
    assert events and all(e["room_id"] == room_id for e in events)
    message = next(e for e in events if e.get("event_id") == event_id)
    assert {"auth_events", "prev_events", "depth", "hashes", "signatures"} <= set(message)
    assert "age" in message["unsigned"]


async def _sync_lazily(
    api: MatrixApi, user: User, room_id: str, since: str | None = None, *,
    redundant: bool = False,
) -> tuple[dict[str, Any], str]:
    flt = json.dumps({"room": {"timeline": {"limit": 2}, "state": {
        "lazy_load_members": True, "include_redundant_members": redundant,
    }}})
    params = {"filter": flt} if since is None else {"filter": flt, "since": since}
    body = await api.sync(user, **params)
    return room_of(body, room_id), body["next_batch"]


async def test_lazy_members_of_a_gappy_sync_and_redundant_members(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    carol = await api.register("carol")
    # Named, so that no heroes' members are owed.
    room_id = await api.create_room(alice, preset="public_chat", name="Gaps")
    await api.join(bob, room_id)
    await api.join(carol, room_id)
    for i in range(3):
        await api.send_message(alice, room_id, f"a{i}")
    room, since = await _sync_lazily(api, bob, room_id)
    assert sorted(members(room)) == sorted([alice.user_id, bob.user_id])

    # A gap: carol joined before `since`, but her messages need her member event.
    for i in range(4):
        await api.send_message(carol, room_id, f"c{i}")
    room, since = await _sync_lazily(api, bob, room_id, since)
    assert room["timeline"]["limited"] is True
    assert members(room) == [carol.user_id]
    # Sent once: the same device is not sent carol's member event again ...
    for i in range(3):
        await api.send_message(carol, room_id, f"again{i}")
    room, since = await _sync_lazily(api, bob, room_id, since)
    assert members(room) == []
    # ... unless it asks for redundant members.
    await api.send_message(alice, room_id, "hi")
    room, since = await _sync_lazily(api, bob, room_id, since, redundant=True)
    assert members(room) == [alice.user_id]


async def test_heroes_only_for_unnamed_rooms(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    named = await api.create_room(alice, preset="public_chat", name="Named")
    unnamed = await api.create_room(alice, preset="public_chat")
    for room_id in (named, unnamed):
        await api.join(bob, room_id)
    body = await api.sync(alice)
    validate_response("sync.yaml", "/sync", "get", 200, body)
    assert "m.heroes" not in room_of(body, named)["summary"]
    assert room_of(body, unnamed)["summary"]["m.heroes"] == [bob.user_id]
    assert room_of(body, named)["summary"]["m.joined_member_count"] == 2


async def test_lazy_loading_sends_the_heroes_members(api: MatrixApi) -> None:
    alice, bob, carol = [await api.register(n) for n in ("alice", "bob", "carol")]
    room_id = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room_id)
    await api.join(carol, room_id)
    for i in range(3):
        await api.send_message(alice, room_id, f"a{i}")
    room, _ = await _sync_lazily(api, alice, room_id)
    assert room["summary"]["m.heroes"] == [bob.user_id, carol.user_id]
    assert sorted(members(room)) == sorted([alice.user_id, bob.user_id, carol.user_id])
