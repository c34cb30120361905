"""POST /createRoom over HTTP: presets, initial state, room versions, aliases and bad bodies."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import pytest

from tests.helpers import MatrixApi, User, validate_response

V12_ROOM_ID = re.compile(r"^![A-Za-z0-9_-]{43}$")


async def state_content(api: MatrixApi, user: User, room_id: str, key: str) -> Any:
    """The content of one state event (`key` is "type" or "type/state_key")."""
    return await api.ok("GET", f"rooms/{room_id}/state/{key}", token=user.token)


async def create(api: MatrixApi, user: User, body: dict[str, Any]) -> str:
    """createRoom, checking the 200 body against the spec's schema."""
    status, result = await api.request("POST", "createRoom", json=body, token=user.token)
    assert status == 200, result
    validate_response("create_room.yaml", "/createRoom", "post", 200, result)
    room_id: str = result["room_id"]
    return room_id


@pytest.mark.parametrize(
    ("preset", "join_rule", "guest_access"),
    [("private_chat", "invite", "can_join"), ("public_chat", "public", "forbidden"),
     ("trusted_private_chat", "invite", "can_join")],
)
async def test_presets_set_join_rules(
    api: MatrixApi, preset: str, join_rule: str, guest_access: str
) -> None:
    alice = await api.register("alice")
    room = await create(api, alice, {"preset": preset})
    assert await state_content(api, alice, room, "m.room.join_rules") == {"join_rule": join_rule}
    guest = await state_content(api, alice, room, "m.room.guest_access")
    assert guest == {"guest_access": guest_access}
    history = await state_content(api, alice, room, "m.room.history_visibility")
    assert history == {"history_visibility": "shared"}


async def test_visibility_public_defaults_to_public_chat(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room = await create(api, alice, {"visibility": "public"})
    assert await state_content(api, alice, room, "m.room.join_rules") == {"join_rule": "public"}
    private = await create(api, alice, {"visibility": "private"})
    assert await state_content(api, alice, private, "m.room.join_rules") == {"join_rule": "invite"}


async def test_name_topic_and_invites(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room = await create(api, alice, {"name": "Den", "topic": "Talk", "invite": [bob.user_id]})
    assert await state_content(api, alice, room, "m.room.name") == {"name": "Den"}
    assert await state_content(api, alice, room, "m.room.topic") == {"topic": "Talk"}
    member = await state_content(api, alice, room, f"m.room.member/{bob.user_id}")
    assert member["membership"] == "invite"
    assert "is_direct" not in member
    sync = await api.sync(bob)
    assert room in sync["rooms"]["invite"]


async def test_is_direct_marks_invites(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room = await create(api, alice, {"invite": [bob.user_id], "is_direct": True})
    member = await state_content(api, alice, room, f"m.room.member/{bob.user_id}")
    assert (member["membership"], member["is_direct"]) == ("invite", True)


async def test_initial_state_overrides_preset_and_is_overridden_by_name_topic(
    api: MatrixApi,
) -> None:
    alice = await api.register("alice")
    initial = [
        {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "public"}},
        {"type": "m.room.name", "content": {"name": "from initial_state"}},
        {"type": "m.room.topic", "content": {"topic": "from initial_state"}},
        {"type": "org.example.custom", "state_key": "k", "content": {"x": 1}},
    ]
    room = await create(api, alice, {
        "preset": "private_chat", "initial_state": initial, "name": "explicit",
    })
    assert await state_content(api, alice, room, "m.room.join_rules") == {"join_rule": "public"}
    assert await state_content(api, alice, room, "m.room.name") == {"name": "explicit"}
    topic = await state_content(api, alice, room, "m.room.topic")
    assert topic == {"topic": "from initial_state"}
    assert await state_content(api, alice, room, "org.example.custom/k") == {"x": 1}


@pytest.mark.parametrize("version", [str(v) for v in range(1, 13)])
async def test_supported_room_versions(api: MatrixApi, version: str) -> None:
    alice = await api.register("alice")
    room = await create(api, alice, {"room_version": version})
    create_content = await state_content(api, alice, room, "m.room.create")
    assert create_content["room_version"] == version
    await api.send_message(alice, room, "works")


@pytest.mark.parametrize("version", ["13", "0", "foo"])
async def test_unsupported_room_versions(api: MatrixApi, version: str) -> None:
    alice = await api.register("alice")
    status, body = await api.request(
        "POST", "createRoom", json={"room_version": version}, token=alice.token
    )
    assert (status, body["errcode"]) == (400, "M_UNSUPPORTED_ROOM_VERSION")
    assert await api.ok("GET", "joined_rooms", token=alice.token) == {"joined_rooms": []}


async def test_room_version_12_ids_and_implicit_creator(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room = await create(api, alice, {"room_version": "12"})
    assert V12_ROOM_ID.match(room), room
    event = await api.ok(
        "GET", f"rooms/{room}/state/m.room.create", token=alice.token,
        params={"format": "event"},
    )
    assert "creator" not in event["content"]
    assert event["sender"] == alice.user_id
    assert event["room_id"] == room


async def test_room_version_10_names_the_creator(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room = await create(api, alice, {"room_version": "10"})
    content = await state_content(api, alice, room, "m.room.create")
    assert content["creator"] == alice.user_id
    assert room.endswith(":" + alice.user_id.split(":", 1)[1])


async def test_power_level_content_override(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room = await create(api, alice, {
        "room_version": "11", "invite": [bob.user_id],
        "power_level_content_override": {"events_default": 20, "users": {
            alice.user_id: 100, bob.user_id: 20}},
    })
    power = await state_content(api, alice, room, "m.room.power_levels")
    assert power["events_default"] == 20
    assert power["users"] == {alice.user_id: 100, bob.user_id: 20}
    await api.join(bob, room)
    await api.send_message(bob, room, "allowed at level 20")


async def test_creation_content_lands_in_create_event(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room = await create(api, alice, {"creation_content": {"m.federate": False}})
    content = await state_content(api, alice, room, "m.room.create")
    assert content["m.federate"] is False
    assert content["room_version"] == "12"


async def test_room_alias_name_resolves_and_is_unique(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room = await create(api, alice, {"room_alias_name": "lobby"})
    alias = f"#lobby:{alice.user_id.split(':', 1)[1]}"
    resolved = await api.ok("GET", f"directory/room/{quote(alias)}")
    assert resolved["room_id"] == room
    assert resolved["servers"]
    assert await state_content(api, alice, room, "m.room.canonical_alias") == {"alias": alias}

    status, body = await api.request(
        "POST", "createRoom", json={"room_alias_name": "lobby"}, token=alice.token
    )
    assert (status, body["errcode"]) == (400, "M_ROOM_IN_USE")
    assert (await api.ok("GET", "joined_rooms", token=alice.token))["joined_rooms"] == [room]


@pytest.mark.parametrize(
    "body",
    [
        {"name": 5}, {"topic": ["x"]}, {"invite": "@bob:localhost"}, {"invite": [7]},
        {"preset": 1}, {"preset": "nope"}, {"visibility": "everyone"}, {"is_direct": "yes"},
        {"room_version": 12}, {"creation_content": []}, {"power_level_content_override": 3},
        {"initial_state": {}}, {"initial_state": [{"content": {}}]},
        {"initial_state": [{"type": "a", "content": "x"}]}, {"room_alias_name": False},
    ],
)
async def test_wrong_types_are_bad_json(api: MatrixApi, body: dict[str, Any]) -> None:
    alice = await api.register("alice")
    status, result = await api.request("POST", "createRoom", json=body, token=alice.token)
    assert (status, result["errcode"]) == (400, "M_BAD_JSON"), result


async def test_not_json_and_not_an_object(api: MatrixApi) -> None:
    alice = await api.register("alice")
    status, result = await api.request("POST", "createRoom", raw=b"{nope", token=alice.token)
    assert (status, result["errcode"]) == (400, "M_NOT_JSON")
    status, result = await api.request("POST", "createRoom", json=[1], token=alice.token)
    assert (status, result["errcode"]) == (400, "M_BAD_JSON")


@pytest.mark.parametrize(
    "body",
    [
        {"room_version": "11", "name": "n",
         "power_level_content_override": {"users": {}, "users_default": 0}},
        {"power_level_content_override": {"users_default": "high"}},
        {"initial_state": [{"type": "m.room.create", "content": {}}]},
        {"initial_state": [{"type": "m.room.member", "state_key": "@bob:localhost",
                            "content": {"membership": "join"}}]},
    ],
)
async def test_invalid_room_state_leaves_nothing_behind(
    api: MatrixApi, body: dict[str, Any]
) -> None:
    alice = await api.register("alice")
    status, result = await api.request(
        "POST", "createRoom", json={**body, "room_alias_name": "doomed"}, token=alice.token
    )
    assert (status, result["errcode"]) == (400, "M_INVALID_ROOM_STATE"), result
    assert await api.ok("GET", "joined_rooms", token=alice.token) == {"joined_rooms": []}
    alias = quote(f"#doomed:{alice.user_id.split(':', 1)[1]}")
    status, result = await api.request("GET", f"directory/room/{alias}")
    assert (status, result["errcode"]) == (404, "M_NOT_FOUND")


@pytest.mark.parametrize(
    ("body", "errcode"),
    [({"room_alias_name": ""}, "M_INVALID_PARAM"), ({"room_alias_name": "a:b"}, "M_INVALID_PARAM"),
     ({"invite": ["@alice:localhost"]}, "M_INVALID_PARAM"),
     ({"invite": ["not-a-user"]}, "M_INVALID_PARAM")],
)
async def test_invalid_params(api: MatrixApi, body: dict[str, Any], errcode: str) -> None:
    alice = await api.register("alice")
    status, result = await api.request("POST", "createRoom", json=body, token=alice.token)
    assert (status, result["errcode"]) == (400, errcode)
    assert await api.ok("GET", "joined_rooms", token=alice.token) == {"joined_rooms": []}
