"""Sliding sync (MSC4186) smoke tests: the implementation's own end-to-end checks (the broad
suite lives in the other test_sliding_sync_*.py modules)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import MatrixApi, User

pytestmark = pytest.mark.usefixtures("no_server_errors")

PATH = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
LIST = {
    "ranges": [[0, 19]], "timeline_limit": 1,
    "required_state": [["m.room.name", ""], ["m.room.member", "$LAZY"]],
}


async def slide(
    api: MatrixApi, user: User, body: dict[str, Any], pos: str | None = None,
    timeout: int = 0,
) -> tuple[int, dict[str, Any]]:
    params = {"timeout": str(timeout)}
    if pos is not None:
        params["pos"] = pos
    status, result = await api.request("POST", PATH, json=body, token=user.token, params=params)
    return status, result


async def ok(api: MatrixApi, user: User, body: dict[str, Any], pos: str | None = None,
             timeout: int = 0) -> dict[str, Any]:
    status, result = await slide(api, user, body, pos, timeout)
    assert status == 200, result
    return result


async def test_versions_advertise_sliding_sync(api: MatrixApi) -> None:
    body = await api.ok("GET", "/_matrix/client/versions")
    assert body["unstable_features"]["org.matrix.simplified_msc3575"] is True


async def test_first_response_then_a_delta(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room_id = await api.create_room(alice, name="Tea")
    await api.send_message(alice, room_id, "hello")
    first = await ok(api, alice, {"lists": {"all": LIST}})
    assert first["lists"]["all"]["count"] == 1
    room = first["rooms"][room_id]
    assert room["initial"] is True
    assert room["name"] == "Tea"
    assert [e["content"].get("body") for e in room["timeline"]] == ["hello"]
    assert room["limited"] is True
    assert ("m.room.name", "") in {(e["type"], e["state_key"]) for e in room["required_state"]}
    assert room["joined_count"] == 1

    quiet = await ok(api, alice, {"lists": {"all": LIST}}, pos=first["pos"])
    assert quiet["rooms"] == {}

    await api.send_message(alice, room_id, "again")
    delta = await ok(api, alice, {"lists": {"all": LIST}}, pos=quiet["pos"])
    room = delta["rooms"][room_id]
    assert "initial" not in room
    assert [e["content"]["body"] for e in room["timeline"]] == ["again"]
    assert room["num_live"] == 1


async def test_unknown_pos_and_bad_bodies(api: MatrixApi) -> None:
    alice = await api.register("alice")
    status, body = await slide(api, alice, {}, pos="999999/s1")
    assert (status, body["errcode"]) == (400, "M_UNKNOWN_POS")
    status, body = await slide(api, alice, {"lists": {"a": {"ranges": [[3, 1]]}}})
    assert status == 400 and body["errcode"] == "M_BAD_JSON"
    status, body = await slide(api, alice, {"lists": {"a": {"timeline_limit": -1}}})
    assert status == 400
