"""Sliding sync (MSC4186) smoke tests: the implementation's own end-to-end checks (the broad
suite lives in the other test_sliding_sync_*.py modules)."""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.app import Homeserver
from tests.conftest import RunningServer
from tests.helpers import MatrixApi
from tests.sliding_sync import Connection, bodies, room_list, rooms, state_pairs

pytestmark = pytest.mark.usefixtures("no_server_errors")

LIST = {"lists": {"all": room_list(
    timeline_limit=1, required_state=[["m.room.name", ""], ["m.room.member", "$LAZY"]],
)}}


async def test_versions_advertise_sliding_sync(api: MatrixApi) -> None:
    body = await api.ok("GET", "/_matrix/client/versions")
    assert body["unstable_features"]["org.matrix.simplified_msc3575"] is True


async def test_first_response_then_a_delta(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room_id = await api.create_room(alice, name="Tea")
    await api.send_message(alice, room_id, "hello")
    conn = Connection(api, alice, LIST)
    first = await conn.sync()
    assert first["lists"]["all"]["count"] == 1
    room = rooms(first)[room_id]
    assert (room["initial"], room["name"], room["limited"]) == (True, "Tea", True)
    assert bodies(room) == ["hello"]
    assert ("m.room.name", "") in state_pairs(room)
    assert room["joined_count"] == 1
    assert rooms(await conn.sync()) == {}
    await api.send_message(alice, room_id, "again")
    room = rooms(await conn.sync())[room_id]
    assert "initial" not in room
    assert (bodies(room), room["num_live"]) == (["again"], 1)


async def test_an_invite_then_a_join_then_a_leave(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room_id = await api.create_room(alice, name="Club")
    conn = Connection(api, bob, LIST)
    assert rooms(await conn.sync()) == {}
    await api.invite(alice, room_id, bob)
    invited = rooms(await conn.sync())[room_id]
    assert invited["invite_state"][-1]["content"]["membership"] == "invite"
    await api.join(bob, room_id)
    joined = rooms(await conn.sync())[room_id]
    assert joined["initial"] is True and "invite_state" not in joined
    await api.ok("POST", f"rooms/{room_id}/leave", json={}, token=bob.token)
    left = await conn.sync()
    assert [e["content"]["membership"] for e in rooms(left)[room_id]["timeline"]] == ["leave"]
    assert left["lists"]["all"]["count"] == 1  # shown once, so the client sees it go
    gone = await conn.sync()
    assert gone["lists"]["all"]["count"] == 0 and rooms(gone) == {}


async def test_a_pos_survives_a_restart_with_a_correct_delta(
    homeserver: RunningServer, http: Any
) -> None:
    api = MatrixApi(homeserver.url, http)
    alice = await api.register("alice")
    room_id = await api.create_room(alice, name="Tea")
    conn = Connection(api, alice, {"lists": {"all": room_list(timeline_limit=5)}})
    await conn.sync()
    await api.send_message(alice, room_id, "before")
    await homeserver.hs.stop()
    hs = Homeserver(homeserver.hs.config)
    await hs.start()
    try:
        api = MatrixApi(f"http://127.0.0.1:{hs.ports['client']}", http)
        conn.api = api
        # Its own transaction ID: this client's counter starts over, and the server rightly
        # answers a repeated one with the earlier event.
        await api.ok(
            "PUT", f"rooms/{room_id}/send/m.room.message/after-restart",
            json={"msgtype": "m.text", "body": "after the restart"}, token=alice.token,
        )
        room = rooms(await conn.sync())[room_id]
        assert "initial" not in room
        assert bodies(room) == ["before", "after the restart"]
        assert rooms(await conn.sync()) == {}
    finally:
        await hs.stop()


async def test_a_refused_invite_shows_no_state_of_the_room(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room_id = await api.create_room(alice, preset="private_chat", topic="for members only")
    await api.invite(alice, room_id, bob)
    conn = Connection(api, bob, {"lists": {"all": room_list(
        timeline_limit=5, required_state=[["*", "*"]])}})
    assert "invite_state" in rooms(await conn.sync())[room_id]
    await api.ok("POST", f"rooms/{room_id}/leave", json={}, token=bob.token)
    room = rooms(await conn.sync())[room_id]
    assert "for members only" not in str(room)
    assert [e["content"]["membership"] for e in room["timeline"]] == ["invite", "leave"]


async def test_new_messages_reuse_the_position(api: MatrixApi) -> None:
    """A response that changes nothing the connection holds (a message in a room it follows,
    from a sender whose member event it has) hands out the same stored position with a newer
    stream token: the steady state writes nothing."""
    alice = await api.register("alice")
    room_id = await api.create_room(alice, name="Tea")
    conn = Connection(api, alice, LIST)
    await conn.sync()
    await api.send_message(alice, room_id, "one")
    await conn.sync()
    assert conn.pos is not None
    stored = conn.pos.split(".")[0]
    for text in ("two", "three"):
        await api.send_message(alice, room_id, text)
        assert bodies(rooms(await conn.sync())[room_id]) == [text]
        assert conn.pos.split(".")[0] == stored
    conn.body = {"lists": {"all": room_list(timeline_limit=2)}}  # what it holds changes
    await conn.sync()
    assert conn.pos.split(".")[0] != stored
