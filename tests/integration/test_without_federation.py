"""A server with no federation listener answers about other servers as a server on its own:
their users' keys fail, their profiles and aliases are unknown, and their users are invited and
sent to-device messages by this server alone (app.py hands its services `NO_FEDERATION`)."""

from __future__ import annotations

from urllib.parse import quote

import aiohttp
import pytest

from tests.conftest import MakeServer
from tests.helpers import MatrixApi

ELSEWHERE = "elsewhere.example"
STRANGER = f"@bob:{ELSEWHERE}"
NO_FEDERATION = {"errcode": "M_UNKNOWN", "error": "Federation is not available on this server"}


@pytest.fixture
async def solo(make_homeserver: MakeServer, http: aiohttp.ClientSession) -> MatrixApi:
    server = await make_homeserver({"listeners.federation.port": None})
    assert "federation" not in server.hs.ports
    return MatrixApi(server.url, http)


async def test_other_servers_users_keys_fail_as_unreachable(solo: MatrixApi) -> None:
    alice = await solo.register("alice")
    query = await solo.ok(
        "POST", "keys/query", json={"device_keys": {STRANGER: []}}, token=alice.token
    )
    assert query["failures"] == {ELSEWHERE: NO_FEDERATION}
    assert query["device_keys"] == {}
    claim = await solo.ok(
        "POST", "keys/claim", json={"one_time_keys": {STRANGER: {"DEV": "signed_curve25519"}}},
        token=alice.token,
    )
    assert claim["failures"] == {ELSEWHERE: NO_FEDERATION}
    assert claim["one_time_keys"] == {}


async def test_other_servers_profiles_and_aliases_are_unknown(solo: MatrixApi) -> None:
    alice = await solo.register("alice")
    status, body = await solo.request("GET", f"profile/{STRANGER}")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    alias = f"#lobby:{ELSEWHERE}"
    unknown = {"errcode": "M_NOT_FOUND", "error": f"Room alias {alias} not found"}
    assert await solo.request("GET", f"directory/room/{quote(alias)}") == (404, unknown)
    joined = await solo.request("POST", f"join/{quote(alias)}", json={}, token=alice.token)
    assert joined == (404, unknown)


async def test_other_servers_users_are_served_by_this_server_alone(solo: MatrixApi) -> None:
    alice = await solo.register("alice")
    room_id = await solo.create_room(alice, preset="private_chat")
    await solo.ok(
        "POST", f"rooms/{room_id}/invite", json={"user_id": STRANGER}, token=alice.token
    )
    member = await solo.ok(
        "GET", f"rooms/{room_id}/state/m.room.member/{STRANGER}", token=alice.token
    )
    assert member["membership"] == "invite"
    sent = await solo.ok(
        "PUT", "sendToDevice/m.test/t1", json={"messages": {STRANGER: {"DEV": {"n": 1}}}},
        token=alice.token,
    )
    assert sent == {}
    page = await solo.ok(
        "GET", f"rooms/{room_id}/messages", params={"dir": "b", "limit": "50"},
        token=alice.token,
    )
    assert page["chunk"][-1]["type"] == "m.room.create"
    assert "end" not in page  # no other server to ask for what came before
