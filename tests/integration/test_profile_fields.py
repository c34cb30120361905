"""Extended profiles (spec v1.16) and the member events a profile change sends, against a
running server over HTTP, validated against the spec's OpenAPI.

`m.tz` and custom namespaced keys are read, set and deleted like `displayname`; the whole
profile stays under 64 KiB and keys under 256 bytes. Changing `displayname` or `avatar_url`
updates the user's m.room.member in every room they are joined to, and in no other.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.federation_peers import eventually
from tests.helpers import MatrixApi, User, validate_response

pytestmark = pytest.mark.usefixtures("no_server_errors")

FIELD = "/profile/{userId}/{keyName}"


def path(user_id: str, key: str | None = None) -> str:
    return f"profile/{quote(user_id)}" + (f"/{quote(key)}" if key else "")


async def test_time_zone_and_custom_fields_are_set_read_and_deleted(api: MatrixApi) -> None:
    alice = await api.register("alice")
    for key, value in (("m.tz", "Europe/Paris"), ("org.example.pets", {"cats": 2}),
                       ("org.example.nothing", None)):
        body = await api.ok("PUT", path(alice.user_id, key), json={key: value},
                            token=alice.token)
        validate_response("profile.yaml", FIELD, "put", 200, body)
        got = await api.ok("GET", path(alice.user_id, key))
        validate_response("profile.yaml", FIELD, "get", 200, got)
        assert got == {key: value}
    profile = await api.ok("GET", path(alice.user_id))
    validate_response("profile.yaml", "/profile/{userId}", "get", 200, profile)
    assert profile == {"displayname": "alice", "m.tz": "Europe/Paris",
                       "org.example.pets": {"cats": 2}, "org.example.nothing": None}

    body = await api.ok("DELETE", path(alice.user_id, "m.tz"), token=alice.token)
    validate_response("profile.yaml", FIELD, "delete", 200, body)
    status, error = await api.request("GET", path(alice.user_id, "m.tz"))
    assert (status, error["errcode"]) == (404, "M_NOT_FOUND")
    # Deleting what isn't set is no error (the spec: "deleted or it doesn't exist").
    assert await api.ok("DELETE", path(alice.user_id, "m.tz"), token=alice.token) == {}
    assert "m.tz" not in await api.ok("GET", path(alice.user_id))


async def test_only_the_owner_changes_extended_fields(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    await api.ok("PUT", path(alice.user_id, "m.tz"), json={"m.tz": "UTC"}, token=alice.token)
    for method, json in (("PUT", {"m.tz": "Asia/Tokyo"}), ("DELETE", None)):
        status, error = await api.request(method, path(alice.user_id, "m.tz"), json=json,
                                          token=bob.token)
        assert (status, error["errcode"]) == (403, "M_FORBIDDEN")
        validate_response("profile.yaml", FIELD, method, 403, error)
    assert await api.ok("GET", path(alice.user_id, "m.tz")) == {"m.tz": "UTC"}


async def test_the_spec_size_limits(api: MatrixApi) -> None:
    alice = await api.register("alice")
    long_key = "org.example." + "k" * 250
    status, error = await api.request("PUT", path(alice.user_id, long_key),
                                      json={long_key: 1}, token=alice.token)
    assert (status, error["errcode"]) == (400, "M_KEY_TOO_LARGE")
    validate_response("profile.yaml", FIELD, "put", 400, error)

    big = "x" * 40_000
    await api.ok("PUT", path(alice.user_id, "org.example.a"), json={"org.example.a": big},
                 token=alice.token)
    status, error = await api.request("PUT", path(alice.user_id, "org.example.b"),
                                      json={"org.example.b": big}, token=alice.token)
    assert (status, error["errcode"]) == (400, "M_PROFILE_TOO_LARGE")
    validate_response("profile.yaml", FIELD, "put", 400, error)
    assert "org.example.b" not in await api.ok("GET", path(alice.user_id))
    # Replacing a big field by a small one is measured on the profile it leaves.
    await api.ok("PUT", path(alice.user_id, "org.example.a"), json={"org.example.a": "small"},
                 token=alice.token)
    await api.ok("PUT", path(alice.user_id, "org.example.b"), json={"org.example.b": big},
                 token=alice.token)


@pytest.mark.parametrize(
    ("key", "body", "errcode"),
    [
        ("m.tz", {"m.tz": 5}, "M_BAD_JSON"),
        ("m.tz", {}, "M_MISSING_PARAM"),
        ("org.example.f", {"org.example.f": 1.5}, "M_BAD_JSON"),
        ("Org.Example", {"Org.Example": 1}, "M_INVALID_PARAM"),
        ("nodots", {"nodots": 1}, "M_INVALID_PARAM"),
    ],
)
async def test_bad_fields(api: MatrixApi, key: str, body: dict[str, Any], errcode: str) -> None:
    alice = await api.register("alice")
    status, error = await api.request("PUT", path(alice.user_id, key), json=body,
                                      token=alice.token)
    assert (status, error["errcode"]) == (400, errcode)


async def test_capabilities_say_every_field_is_editable(api: MatrixApi) -> None:
    alice = await api.register("alice")
    caps = await api.ok("GET", "capabilities", token=alice.token)
    validate_response("capabilities.yaml", "/capabilities", "get", 200, caps)
    assert caps["capabilities"]["m.profile_fields"] == {"enabled": True}


async def member_content(api: MatrixApi, viewer: User, room_id: str, user_id: str) -> Any:
    return await api.ok(
        "GET", f"rooms/{quote(room_id)}/state/m.room.member/{quote(user_id)}",
        token=viewer.token,
    )


async def test_a_new_name_and_avatar_reach_every_joined_room(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    rooms = [await api.create_room(bob, preset="public_chat") for _ in range(3)]
    for room_id in rooms:
        await api.join(alice, room_id)
    left = rooms.pop()
    await api.ok("POST", f"rooms/{quote(left)}/leave", json={}, token=alice.token)
    # A per-room name gives way to the profile's, as Synapse does.
    await api.ok("PUT", f"rooms/{quote(rooms[0])}/state/m.room.member/{quote(alice.user_id)}",
                 json={"membership": "join", "displayname": "Al in room 0"}, token=alice.token)

    await api.ok("PUT", path(alice.user_id, "displayname"), json={"displayname": "Alice L."},
                 token=alice.token)
    await api.ok("PUT", path(alice.user_id, "avatar_url"),
                 json={"avatar_url": "mxc://localhost/alice"}, token=alice.token)
    wanted = {"membership": "join", "displayname": "Alice L.",
              "avatar_url": "mxc://localhost/alice"}

    async def updated() -> bool:
        return all([await member_content(api, bob, r, alice.user_id) == wanted for r in rooms])

    await eventually(updated, "alice's member events to carry her new profile")
    assert (await member_content(api, bob, left, alice.user_id))["membership"] == "leave"

    # Bob's /sync shows the change as a member event in the timeline.
    timeline = (await api.sync(bob))["rooms"]["join"][rooms[1]]["timeline"]["events"]
    assert any(e["type"] == "m.room.member" and e["state_key"] == alice.user_id
               and e["content"] == wanted for e in timeline)

    # Removing the avatar removes it from the member events too.
    await api.ok("DELETE", path(alice.user_id, "avatar_url"), token=alice.token)
    del wanted["avatar_url"]
    await eventually(updated, "alice's member events to lose her avatar")


async def test_extended_fields_send_no_member_events(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room_id = await api.create_room(alice)
    before = await api.ok("GET", f"rooms/{quote(room_id)}/messages", token=alice.token,
                          params={"dir": "b", "limit": "50"})
    await api.ok("PUT", path(alice.user_id, "m.tz"), json={"m.tz": "UTC"}, token=alice.token)
    # A later rename's event comes after anything the time zone could have caused.
    await api.ok("PUT", path(alice.user_id, "displayname"), json={"displayname": "A"},
                 token=alice.token)

    async def renamed() -> Any:
        content = await member_content(api, alice, room_id, alice.user_id)
        return content.get("displayname") == "A"

    await eventually(renamed, "the rename")
    after = await api.ok("GET", f"rooms/{quote(room_id)}/messages", token=alice.token,
                         params={"dir": "b", "limit": "50"})
    assert len(after["chunk"]) == len(before["chunk"]) + 1
