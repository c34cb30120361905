"""The admin API's rooms (Synapse's `rooms.md` and `room_membership.md`): listing, details,
members, state and messages; blocking; make room admin; force-join; deleting with and without
purge, and the deletion's status."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.admin_api import ADMIN, admin_and_public_room, admin_ok, make_admin
from tests.conftest import RunningServer
from tests.federation_peers import eventually
from tests.helpers import MatrixApi, User

pytestmark = pytest.mark.usefixtures("no_server_errors")

UNKNOWN_ROOM = "!nowhere:localhost"


async def refused(
    api: MatrixApi, user: User, method: str, path: str, status: int, errcode: str,
    **kwargs: Any,
) -> None:
    got, body = await api.request(method, ADMIN + path, token=user.token, **kwargs)
    assert (got, body["errcode"]) == (status, errcode), (method, path, got, body)


async def state_content(api: MatrixApi, user: User, room_id: str, event_type: str) -> Any:
    return await api.ok("GET", f"rooms/{room_id}/state/{event_type}", token=user.token)


async def test_list_rooms_search_order_and_pages(
    homeserver: RunningServer, api: MatrixApi
) -> None:
    admin = await make_admin(homeserver, api)
    alice, bob = await api.register("alice"), await api.register("bob")
    bravo = await api.create_room(alice, name="Bravo", preset="public_chat")
    alpha = await api.create_room(alice, name="Alpha", room_alias_name="first")
    charlie = await api.create_room(
        alice, name="Charlie", initial_state=[
            {"type": "m.room.encryption", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
        ],
    )
    await api.join(bob, bravo)

    body = await admin_ok(api, admin, "GET", "/v1/rooms")
    assert [r["room_id"] for r in body["rooms"]] == [alpha, bravo, charlie]
    assert (body["offset"], body["total_rooms"]) == (0, 3)
    assert "next_batch" not in body and "prev_batch" not in body
    room = body["rooms"][1]
    assert room == {
        "room_id": bravo, "name": "Bravo", "canonical_alias": None, "joined_members": 2,
        "joined_local_members": 2, "version": room["version"], "creator": alice.user_id,
        "encryption": None, "federatable": True, "public": False, "join_rules": "public",
        "guest_access": room["guest_access"], "history_visibility": "shared",
        "state_events": room["state_events"], "room_type": None,
    }
    assert room["state_events"] >= 5 and isinstance(room["version"], str)
    assert body["rooms"][0]["canonical_alias"] == "#first:localhost"
    assert body["rooms"][2]["encryption"] == "m.megolm.v1.aes-sha2"

    backwards = await admin_ok(api, admin, "GET", "/v1/rooms", params={"dir": "b"})
    assert [r["room_id"] for r in backwards["rooms"]] == [charlie, bravo, alpha]
    biggest = await admin_ok(api, admin, "GET", "/v1/rooms", params={"order_by": "joined_members"})
    assert biggest["rooms"][0]["room_id"] == bravo

    first = await admin_ok(api, admin, "GET", "/v1/rooms", params={"limit": "2"})
    assert [r["room_id"] for r in first["rooms"]] == [alpha, bravo]
    assert first["next_batch"] == 2 and "prev_batch" not in first
    second = await admin_ok(
        api, admin, "GET", "/v1/rooms", params={"limit": "2", "from": str(first["next_batch"])}
    )
    assert [r["room_id"] for r in second["rooms"]] == [charlie]
    assert (second["offset"], second["prev_batch"], second["total_rooms"]) == (2, 0, 3)
    assert "next_batch" not in second

    for term, expected in (("rAv", [bravo]), ("first", [alpha]), (charlie, [charlie])):
        found = await admin_ok(api, admin, "GET", "/v1/rooms", params={"search_term": term})
        assert [r["room_id"] for r in found["rooms"]] == expected, term
        assert found["total_rooms"] == len(expected)

    for params in (
        {"order_by": "colour"}, {"dir": "x"}, {"limit": "-1"}, {"from": "-3"}, {"from": "x"},
        {"public_rooms": "maybe"},
    ):
        await refused(api, admin, "GET", "/v1/rooms", 400, "M_INVALID_PARAM", params=params)
    await refused(api, bob, "GET", "/v1/rooms", 403, "M_FORBIDDEN")


async def test_room_details_members_state_and_messages(
    homeserver: RunningServer, api: MatrixApi
) -> None:
    admin, alice, bob, room = await admin_and_public_room(
        homeserver, api, name="Den", topic="Things"
    )
    await api.ok(
        "PUT", f"rooms/{room}/state/m.room.avatar", json={"url": "mxc://localhost/pic"},
        token=alice.token,
    )
    sent = [await api.send_message(alice, room, f"hello {i}") for i in range(3)]

    details = await admin_ok(api, admin, "GET", f"/v1/rooms/{room}")
    assert details["room_id"] == room
    assert (details["name"], details["topic"], details["avatar"]) == (
        "Den", "Things", "mxc://localhost/pic"
    )
    assert (details["joined_members"], details["joined_local_members"]) == (2, 2)
    assert details["joined_local_devices"] == 2 and details["forgotten"] is False
    assert details["creator"] == alice.user_id and details["join_rules"] == "public"
    assert (details["tombstoned"], details["replacement_room"]) == (False, None)

    members = await admin_ok(api, admin, "GET", f"/v1/rooms/{room}/members")
    assert sorted(members["members"]) == sorted([alice.user_id, bob.user_id])
    assert members["total"] == 2

    state = (await admin_ok(api, admin, "GET", f"/v1/rooms/{room}/state"))["state"]
    assert {(e["type"], e["state_key"]) for e in state} >= {
        ("m.room.create", ""), ("m.room.name", ""), ("m.room.member", bob.user_id),
    }
    names = await admin_ok(
        api, admin, "GET", f"/v1/rooms/{room}/state", params={"type": "m.room.name"}
    )
    assert [e["content"] for e in names["state"]] == [{"name": "Den"}]

    # The admin is no member, yet reads the room; forwards from the start by default.
    page = await admin_ok(
        api, admin, "GET", f"/v1/rooms/{room}/messages",
        params={"limit": "100", "filter": '{"types": ["m.room.message"]}'},
    )
    assert [e["event_id"] for e in page["chunk"]] == sent
    latest = await admin_ok(
        api, admin, "GET", f"/v1/rooms/{room}/messages", params={"dir": "b", "limit": "1"}
    )
    assert [e["event_id"] for e in latest["chunk"]] == [sent[-1]] and "end" in latest

    upgraded = await api.ok(
        "POST", f"rooms/{room}/upgrade", json={"new_version": "11"}, token=alice.token
    )
    details = await admin_ok(api, admin, "GET", f"/v1/rooms/{room}")
    assert (details["tombstoned"], details["replacement_room"]) == (
        True, upgraded["replacement_room"]
    )

    for path in ("", "/members", "/state", "/messages"):
        await refused(api, admin, "GET", f"/v1/rooms/{UNKNOWN_ROOM}{path}", 404, "M_NOT_FOUND")
        await refused(api, admin, "GET", f"/v1/rooms/not-a-room{path}", 400, "M_INVALID_PARAM")
        await refused(api, bob, "GET", f"/v1/rooms/{room}{path}", 403, "M_FORBIDDEN")
    await refused(
        api, admin, "GET", f"/v1/rooms/{room}/messages", 400, "M_INVALID_PARAM",
        params={"dir": "sideways"},
    )


async def test_blocked_room_refuses_joins_and_invites(
    homeserver: RunningServer, api: MatrixApi
) -> None:
    admin = await make_admin(homeserver, api)
    alice, bob = await api.register("alice"), await api.register("bob")
    room = await api.create_room(alice, preset="public_chat")
    assert await admin_ok(api, admin, "GET", f"/v1/rooms/{room}/block") == {"block": False}

    answer = await admin_ok(api, admin, "PUT", f"/v1/rooms/{room}/block", json={"block": True})
    assert answer == {"block": True}
    assert await admin_ok(api, admin, "GET", f"/v1/rooms/{room}/block") == {
        "block": True, "user_id": admin.user_id,
    }
    status, body = await api.request("POST", f"join/{room}", json={}, token=bob.token)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await api.request(
        "POST", f"rooms/{room}/invite", json={"user_id": bob.user_id}, token=alice.token
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")

    await admin_ok(api, admin, "PUT", f"/v1/rooms/{room}/block", json={"block": False})
    await api.join(bob, room)

    # A room this server never saw may be blocked ahead.
    await admin_ok(api, admin, "PUT", f"/v1/rooms/{UNKNOWN_ROOM}/block", json={"block": True})
    assert (await admin_ok(api, admin, "GET", f"/v1/rooms/{UNKNOWN_ROOM}/block"))["block"]

    path = f"/v1/rooms/{room}/block"
    for bad in ({}, {"block": "yes"}):
        await refused(api, admin, "PUT", path, 400, "M_BAD_JSON", json=bad)
    await refused(api, admin, "PUT", path, 400, "M_NOT_JSON", raw=b"{nope")
    await refused(api, bob, "PUT", path, 403, "M_FORBIDDEN", json={"block": True})
    await refused(api, bob, "GET", path, 403, "M_FORBIDDEN")


async def test_make_room_admin(homeserver: RunningServer, api: MatrixApi) -> None:
    admin = await make_admin(homeserver, api)
    alice, bob = await api.register("alice"), await api.register("bob")
    room = await api.create_room(alice, room_alias_name="den")

    # The caller by default: made as powerful as alice, and invited to the private room.
    await admin_ok(api, admin, "POST", f"/v1/rooms/{room}/make_room_admin", json={})
    await api.join(admin, room)
    levels = await state_content(api, alice, room, "m.room.power_levels")
    top = levels["users"][alice.user_id] if alice.user_id in levels["users"] else 100
    assert levels["users"][admin.user_id] == top
    await api.ok("PUT", f"rooms/{room}/state/m.room.topic", json={"topic": "x"}, token=admin.token)

    await admin_ok(
        api, admin, "POST", f"/v1/rooms/{quote('#den:localhost')}/make_room_admin",
        json={"user_id": bob.user_id},
    )
    await api.join(bob, room)
    levels = await state_content(api, alice, room, "m.room.power_levels")
    assert levels["users"][bob.user_id] == top

    # Every local member who could change the power levels has left: nobody can grant it.
    orphan = await api.create_room(alice, preset="public_chat")
    await api.join(bob, orphan)
    await api.ok("POST", f"rooms/{orphan}/leave", json={}, token=alice.token)
    path = f"/v1/rooms/{orphan}/make_room_admin"
    await refused(api, admin, "POST", path, 400, "M_UNKNOWN", json={})

    await refused(api, admin, "POST", path, 400, "M_INVALID_PARAM", json={"user_id": "bob"})
    await refused(api, admin, "POST", path, 400, "M_BAD_JSON", json={"user_id": 7})
    await refused(
        api, admin, "POST", f"/v1/rooms/{UNKNOWN_ROOM}/make_room_admin", 404, "M_NOT_FOUND",
        json={},
    )
    await refused(api, bob, "POST", path, 403, "M_FORBIDDEN", json={})


async def test_force_join(homeserver: RunningServer, api: MatrixApi) -> None:
    admin = await make_admin(homeserver, api)
    alice, bob = await api.register("alice"), await api.register("bob")
    public = await api.create_room(alice, preset="public_chat", room_alias_name="square")
    private = await api.create_room(alice)

    body = await admin_ok(
        api, admin, "POST", f"/v1/join/{quote('#square:localhost')}",
        json={"user_id": bob.user_id},
    )
    assert body == {"room_id": public}
    # A private room: alice, its admin, invites bob first.
    body = await admin_ok(api, admin, "POST", f"/v1/join/{private}", json={"user_id": bob.user_id})
    assert body == {"room_id": private}
    for room in (public, private):
        members = await admin_ok(api, admin, "GET", f"/v1/rooms/{room}/members")
        assert bob.user_id in members["members"]

    path = f"/v1/join/{public}"
    await refused(api, admin, "POST", path, 400, "M_BAD_JSON", json={})
    await refused(
        api, admin, "POST", path, 400, "M_INVALID_PARAM", json={"user_id": "@x:elsewhere.test"}
    )
    await refused(
        api, admin, "POST", path, 404, "M_NOT_FOUND", json={"user_id": "@ghost:localhost"}
    )
    await refused(
        api, admin, "POST", f"/v1/join/{quote('#missing:localhost')}", 404, "M_NOT_FOUND",
        json={"user_id": bob.user_id},
    )
    await refused(api, bob, "POST", path, 403, "M_FORBIDDEN", json={"user_id": bob.user_id})


async def _finished(api: MatrixApi, admin: User, delete_id: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        status = await admin_ok(api, admin, "GET", f"/v2/rooms/delete_status/{delete_id}")
        return status if status["status"] in ("complete", "failed") else None

    result: dict[str, Any] = await eventually(done, "the room deletion to finish")
    return result


async def test_delete_room_moves_users_and_purges(
    homeserver: RunningServer, api: MatrixApi
) -> None:
    admin = await make_admin(homeserver, api)
    alice, bob = await api.register("alice"), await api.register("bob")
    room = await api.create_room(alice, preset="public_chat", room_alias_name="doomed")
    other = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room)
    await api.send_message(bob, room, "something bad")

    answer = await admin_ok(api, admin, "DELETE", f"/v2/rooms/{room}", json={
        "new_room_user_id": admin.user_id, "room_name": "Moved", "message": "Closed.",
        "block": True,
    })
    status = await _finished(api, admin, answer["delete_id"])
    assert (status["status"], status["room_id"]) == ("complete", room), status
    result = status["shutdown_room"]
    assert sorted(result["kicked_users"]) == sorted([alice.user_id, bob.user_id])
    assert result["failed_to_kick_users"] == []
    assert result["local_aliases"] == ["#doomed:localhost"]
    new_room = result["new_room_id"]
    by_room = await admin_ok(api, admin, "GET", f"/v2/rooms/{room}/delete_status")
    assert by_room == {"results": [status]}

    # The room is gone from the server; the users, the alias and a message are in the new one.
    await refused(api, admin, "GET", f"/v1/rooms/{room}", 404, "M_NOT_FOUND")
    listed = await admin_ok(api, admin, "GET", "/v1/rooms")
    assert room not in {r["room_id"] for r in listed["rooms"]}
    joined = await api.ok("GET", "joined_rooms", token=bob.token)
    assert new_room in joined["joined_rooms"] and room not in joined["joined_rooms"]
    alias = await api.ok("GET", f"directory/room/{quote('#doomed:localhost')}", token=bob.token)
    assert alias["room_id"] == new_room
    page = await api.ok("GET", f"rooms/{new_room}/messages", token=bob.token, params={"dir": "b"})
    assert "Closed." in [e["content"].get("body") for e in page["chunk"]]
    status_code, _ = await api.request("POST", f"join/{room}", json={}, token=bob.token)
    assert status_code == 403  # blocked

    # The server carries on: the other room takes messages, syncs work.
    await api.send_message(alice, other, "still here")
    await api.sync(bob)
    await api.sync(alice)


async def test_delete_without_new_room_frees_the_alias(
    homeserver: RunningServer, api: MatrixApi
) -> None:
    admin = await make_admin(homeserver, api)
    alice = await api.register("alice")
    room = await api.create_room(alice, preset="public_chat", room_alias_name="reuse")
    await api.send_message(alice, room, "hi")

    answer = await admin_ok(api, admin, "DELETE", f"/v2/rooms/{room}", json={})
    status = await _finished(api, admin, answer["delete_id"])
    assert status["status"] == "complete", status
    assert status["shutdown_room"] == {
        "kicked_users": [alice.user_id], "failed_to_kick_users": [],
        "local_aliases": ["#reuse:localhost"], "new_room_id": None,
    }
    await refused(api, admin, "GET", f"/v1/rooms/{room}/state", 404, "M_NOT_FOUND")
    again = await api.create_room(alice, room_alias_name="reuse")
    alias = await api.ok("GET", f"directory/room/{quote('#reuse:localhost')}", token=alice.token)
    assert alias["room_id"] == again
    await api.send_message(alice, again, "fresh start")


async def test_delete_without_purge_keeps_the_room(
    homeserver: RunningServer, api: MatrixApi
) -> None:
    admin, alice, bob, room = await admin_and_public_room(homeserver, api)

    result = await admin_ok(api, admin, "DELETE", f"/v1/rooms/{room}", json={"purge": False})
    assert sorted(result["kicked_users"]) == sorted([alice.user_id, bob.user_id])
    assert result["new_room_id"] is None
    details = await admin_ok(api, admin, "GET", f"/v1/rooms/{room}")
    assert (details["joined_members"], details["forgotten"]) == (0, True)
    assert (await admin_ok(api, admin, "GET", f"/v1/rooms/{room}/block"))["block"] is False

    # v1 blocks a room this server never saw, and refuses to delete it otherwise.
    await admin_ok(api, admin, "DELETE", f"/v1/rooms/{UNKNOWN_ROOM}", json={"block": True})
    assert (await admin_ok(api, admin, "GET", f"/v1/rooms/{UNKNOWN_ROOM}/block"))["block"]
    await refused(api, admin, "DELETE", "/v1/rooms/!other:localhost", 400, "M_UNKNOWN", json={})


async def test_delete_bad_input_and_access(homeserver: RunningServer, api: MatrixApi) -> None:
    admin = await make_admin(homeserver, api)
    alice = await api.register("alice")
    room = await api.create_room(alice)
    path = f"/v2/rooms/{room}"

    await refused(api, admin, "DELETE", path, 400, "M_NOT_JSON")  # the body must be {} at least
    await refused(api, admin, "DELETE", path, 400, "M_BAD_JSON", json={"purge": "yes"})
    await refused(api, admin, "DELETE", path, 400, "M_BAD_JSON", json={"new_room_user_id": 1})
    await refused(
        api, admin, "DELETE", path, 400, "M_INVALID_PARAM",
        json={"new_room_user_id": "@x:elsewhere.test"},
    )
    await refused(api, admin, "DELETE", f"/v2/rooms/{UNKNOWN_ROOM}", 404, "M_NOT_FOUND", json={})
    await refused(api, admin, "DELETE", "/v2/rooms/junk", 400, "M_INVALID_PARAM", json={})
    await refused(api, admin, "GET", "/v2/rooms/delete_status/nope", 404, "M_NOT_FOUND")
    await refused(api, admin, "GET", f"{path}/delete_status", 404, "M_NOT_FOUND")

    await refused(api, alice, "DELETE", path, 403, "M_FORBIDDEN", json={})
    await refused(api, alice, "DELETE", f"/v1/rooms/{room}", 403, "M_FORBIDDEN", json={})
    await refused(api, alice, "GET", f"{path}/delete_status", 403, "M_FORBIDDEN")
    await refused(api, alice, "GET", "/v2/rooms/delete_status/x", 403, "M_FORBIDDEN")
    # Nothing happened to the room.
    assert (await admin_ok(api, admin, "GET", f"/v1/rooms/{room}"))["joined_members"] == 1
