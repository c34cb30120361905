"""Statistics through the admin API: each local user's uploads (count and bytes; paged,
ordered, filtered by name and time) and the rooms whose events take the most space."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import pytest

from tests.admin_api import ADMIN, admin_ok, make_admin
from tests.conftest import RunningServer
from tests.helpers import MatrixApi, User

pytestmark = pytest.mark.usefixtures("no_server_errors")

MEDIA = "/v1/statistics/users/media"


async def upload(api: MatrixApi, user: User, data: bytes) -> None:
    status, body = await api.request("POST", "/_matrix/media/v3/upload", raw=data,
                                     token=user.token, headers={"Content-Type": "text/plain"})
    assert status == 200, body


async def test_users_media_usage(homeserver: RunningServer, api: MatrixApi) -> None:
    admin = await make_admin(homeserver, api)
    alice, bob = await api.register("alice"), await api.register("bob")
    await api.register("carol")  # uploads nothing: not listed
    await api.ok("PUT", f"profile/{quote(bob.user_id)}/displayname",
                 json={"displayname": "Robert"}, token=bob.token)
    before = int(time.time() * 1000) - 1
    await upload(api, alice, b"12345")
    await upload(api, alice, b"123")
    await upload(api, bob, b"1234567890")

    body = await admin_ok(api, admin, "GET", MEDIA)
    assert body == {"users": [
        {"user_id": alice.user_id, "displayname": "alice", "media_count": 2, "media_length": 8},
        {"user_id": bob.user_id, "displayname": "Robert", "media_count": 1, "media_length": 10},
    ], "total": 2}

    async def users(**params: str) -> list[str]:
        page = await admin_ok(api, admin, "GET", MEDIA, params=params)
        return [u["user_id"] for u in page["users"]]

    assert await users(order_by="media_length", dir="b") == [bob.user_id, alice.user_id]
    assert await users(order_by="media_count") == [bob.user_id, alice.user_id]
    assert await users(search_term="rob") == [bob.user_id]  # the display name
    assert await users(search_term="ali") == [alice.user_id]  # the localpart
    assert await users(until_ts=str(before)) == []
    assert await users(from_ts=str(before)) == [alice.user_id, bob.user_id]
    first = await admin_ok(api, admin, "GET", MEDIA, params={"limit": "1"})
    assert (first["total"], first["next_token"]) == (2, 1)


async def test_largest_rooms(homeserver: RunningServer, api: MatrixApi) -> None:
    admin = await make_admin(homeserver, api)
    alice = await api.register("alice")
    small = await api.create_room(alice)
    big = await api.create_room(alice)
    for n in range(5):
        await api.send_message(alice, big, f"message {n} " + "x" * 500)
    body = await admin_ok(api, admin, "GET", "/v1/statistics/database/rooms")
    rooms = [r["room_id"] for r in body["rooms"]]
    assert rooms.index(big) < rooms.index(small)
    assert all(isinstance(r["estimated_size"], int) and r["estimated_size"] > 0
               for r in body["rooms"])


@pytest.mark.parametrize("path", [MEDIA, "/v1/statistics/database/rooms"])
async def test_only_admins(api: MatrixApi, path: str) -> None:
    alice = await api.register("alice")
    status, body = await api.request("GET", ADMIN + path, token=alice.token)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


@pytest.mark.parametrize("params", [
    {"order_by": "size"}, {"dir": "sideways"}, {"limit": "-1"}, {"from": "x"},
    {"from": str(2**64)}, {"from_ts": "-1"}, {"until_ts": "soon"},
    {"from_ts": "10", "until_ts": "5"}, {"search_term": ""},
])
async def test_bad_input(homeserver: RunningServer, api: MatrixApi, params: Any) -> None:
    admin = await make_admin(homeserver, api)
    status, body = await api.request("GET", ADMIN + MEDIA, token=admin.token, params=params)
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
