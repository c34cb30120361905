"""Room tags (`/user/{userId}/rooms/{roomId}/tags`) and the m.direct account data round trip."""

from __future__ import annotations

from tests.bad_input import assert_sane, bodies, collect, send_body
from tests.helpers import MatrixApi, User, validate_response

TAGS = "/user/{userId}/rooms/{roomId}/tags"


def tags_path(user: User, room: str, tag: str | None = None) -> str:
    path = f"user/{user.user_id}/rooms/{room}/tags"
    return path if tag is None else f"{path}/{tag}"


def room_tags_in_sync(body: dict, room: str) -> list[dict]:
    section = body["rooms"]["join"].get(room, {})
    return [e for e in section.get("account_data", {}).get("events", []) if e["type"] == "m.tag"]


async def test_tags_round_trip_and_appear_in_sync(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room = await api.create_room(alice)
    body = await api.ok("GET", tags_path(alice, room), token=alice.token)
    validate_response("tags.yaml", TAGS, "get", 200, body)
    assert body == {"tags": {}}
    since = (await api.sync(alice))["next_batch"]
    put = await api.ok(
        "PUT", tags_path(alice, room, "m.favourite"), json={"order": 0.25}, token=alice.token
    )
    validate_response("tags.yaml", TAGS + "/{tag}", "put", 200, put)
    await api.ok("PUT", tags_path(alice, room, "u.work"), json={}, token=alice.token)
    body = await api.ok("GET", tags_path(alice, room), token=alice.token)
    validate_response("tags.yaml", TAGS, "get", 200, body)
    assert body == {"tags": {"m.favourite": {"order": 0.25}, "u.work": {}}}
    synced = await api.sync(alice, since=since)
    [event] = room_tags_in_sync(synced, room)
    assert event["content"] == {"tags": {"m.favourite": {"order": 0.25}, "u.work": {}}}
    since = synced["next_batch"]
    deleted = await api.ok("DELETE", tags_path(alice, room, "m.favourite"), token=alice.token)
    validate_response("tags.yaml", TAGS + "/{tag}", "delete", 200, deleted)
    assert (await api.ok("GET", tags_path(alice, room), token=alice.token)) == {
        "tags": {"u.work": {}}
    }
    [event] = room_tags_in_sync(await api.sync(alice, since=since), room)
    assert event["content"] == {"tags": {"u.work": {}}}
    # Removing a tag the room does not have is fine and changes nothing.
    await api.ok("DELETE", tags_path(alice, room, "m.lowpriority"), token=alice.token)


async def test_tag_errors(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room = await api.create_room(alice)
    cases = [
        ("PUT", tags_path(alice, room, "u.x"), {"order": "first"}, alice, 400, "M_BAD_JSON"),
        ("PUT", tags_path(alice, room, "u.x"), [1], alice, 400, "M_BAD_JSON"),
        ("PUT", tags_path(alice, room, "u.x"), {}, bob, 403, "M_FORBIDDEN"),
        ("GET", tags_path(alice, room), None, bob, 403, "M_FORBIDDEN"),
        ("DELETE", tags_path(alice, room, "u.x"), None, bob, 403, "M_FORBIDDEN"),
        ("GET", tags_path(alice, "not-a-room"), None, alice, 400, "M_INVALID_PARAM"),
        ("PUT", tags_path(alice, room, "u." + "x" * 300), {}, alice, 400, "M_INVALID_PARAM"),
    ]
    for method, path, json, caller, status, errcode in cases:
        got, body = await api.request(method, path, json=json, token=caller.token)
        assert (got, body["errcode"]) == (status, errcode), (method, path, json)
    got, body = await api.request(
        "PUT", tags_path(alice, room, "u.x"), raw=b"\xff", token=alice.token,
        headers={"Content-Type": "application/json"},
    )
    assert (got, body["errcode"]) == (400, "M_NOT_JSON")
    got, body = await api.request("GET", tags_path(alice, room))
    assert (got, body["errcode"]) == (401, "M_MISSING_TOKEN")


async def test_m_direct_round_trips_through_account_data(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room = await api.create_room(alice, is_direct=True, invite=[bob.user_id])
    since = (await api.sync(alice))["next_batch"]
    direct = {bob.user_id: [room]}
    path = f"user/{alice.user_id}/account_data/m.direct"
    await api.ok("PUT", path, json=direct, token=alice.token)
    assert await api.ok("GET", path, token=alice.token) == direct
    body = await api.sync(alice, since=since)
    validate_response("sync.yaml", "/sync", "get", 200, body)
    events = [e for e in body["account_data"]["events"] if e["type"] == "m.direct"]
    assert events == [{"type": "m.direct", "content": direct}]
    initial = await api.sync(alice)
    assert {"type": "m.direct", "content": direct} in initial["account_data"]["events"]


async def test_put_tag_survives_arbitrary_bodies(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room = await api.create_room(alice)
    for i, (kind, value) in enumerate(collect(bodies)):
        path = tags_path(alice, room, f"u.fuzz{i}")
        status, body = await send_body(api, "PUT", path, alice.token, kind, value)
        assert_sane(status, body, value)
