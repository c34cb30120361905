"""Per-user quotas and write rate limits (issue 22 item 7), over HTTP.

Each test lowers one quota (or enables one rate limit) and checks that the write past it is
refused with the code the server uses for its kind: 403 M_FORBIDDEN for a count, 413
M_TOO_LARGE for a size, 429 M_LIMIT_EXCEEDED for a rate; and that what stays within it works.
"""

from __future__ import annotations

import base64
import os
from typing import TYPE_CHECKING, Any

import aiohttp

from tests.e2e_keys import ALGORITHM, auth_data, key
from tests.helpers import MatrixApi, User

if TYPE_CHECKING:
    from tests.conftest import MakeServer

NO_LIMIT = {"per_second": 100_000, "burst": 100_000}


async def server_api(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, overrides: dict[str, Any],
    localpart: str = "quinn",
) -> tuple[MatrixApi, User]:
    server = await make_homeserver(overrides=overrides)
    api = MatrixApi(server.url, http)
    return api, await api.register(localpart)


def assert_error(result: tuple[int, Any], status: int, errcode: str) -> None:
    body = result[1] if isinstance(result[1], dict) else {}
    assert (result[0], body.get("errcode")) == (status, errcode), result


async def test_account_data_entries_and_size_are_capped(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    api, user = await server_api(make_homeserver, http, {
        "quotas.max_account_data_entries": 3, "quotas.max_account_data_bytes": 100,
    })
    base = f"user/{user.user_id}"
    room_id = await api.create_room(user)
    for path in (f"{base}/account_data/a.one", f"{base}/account_data/a.two",
                 f"{base}/rooms/{room_id}/account_data/a.three"):
        await api.ok("PUT", path, json={"n": 1}, token=user.token)
    # Global and per-room entries count together; rewriting one adds nothing.
    assert_error(await api.request(
        "PUT", f"{base}/account_data/a.four", json={}, token=user.token
    ), 403, "M_FORBIDDEN")
    await api.ok("PUT", f"{base}/account_data/a.one", json={"n": 2}, token=user.token)
    assert_error(await api.request(
        "PUT", f"{base}/account_data/a.two", json={"big": "x" * 100}, token=user.token
    ), 413, "M_TOO_LARGE")
    assert await api.ok("GET", f"{base}/account_data/a.two", token=user.token) == {"n": 1}


async def test_tags_per_room_are_capped(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    api, user = await server_api(make_homeserver, http, {"quotas.max_tags_per_room": 2})
    room_id = await api.create_room(user)
    path = f"user/{user.user_id}/rooms/{room_id}/tags"
    for tag in ("u.a", "u.b"):
        await api.ok("PUT", f"{path}/{tag}", json={}, token=user.token)
    assert_error(await api.request("PUT", f"{path}/u.c", json={}, token=user.token),
                 403, "M_FORBIDDEN")
    await api.ok("PUT", f"{path}/u.b", json={"order": 0.5}, token=user.token)


async def test_filters_per_user_are_capped(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    api, user = await server_api(make_homeserver, http, {"quotas.max_filters_per_user": 2})
    path = f"user/{user.user_id}/filter"
    for limit in (1, 2):
        await api.ok("POST", path, json={"room": {"timeline": {"limit": limit}}}, token=user.token)
    assert_error(await api.request("POST", path, json={}, token=user.token), 403, "M_FORBIDDEN")
    big = {"event_fields": ["x" * 100] * 1000}
    assert_error(await api.request("POST", path, json=big, token=user.token),
                 413, "M_TOO_LARGE")


async def test_aliases_per_user_are_capped(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    api, user = await server_api(make_homeserver, http, {"quotas.max_aliases_per_user": 1})
    room_id = await api.create_room(user, room_alias_name="first")
    assert_error(await api.request(
        "PUT", "directory/room/%23second:localhost", json={"room_id": room_id}, token=user.token
    ), 403, "M_FORBIDDEN")
    await api.ok("DELETE", "directory/room/%23first:localhost", token=user.token)
    await api.ok(
        "PUT", "directory/room/%23second:localhost", json={"room_id": room_id}, token=user.token
    )


async def test_initial_state_is_capped(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    api, user = await server_api(make_homeserver, http, {})
    state = [{"type": "x.state", "state_key": str(i), "content": {}} for i in range(101)]
    assert_error(await api.request(
        "POST", "createRoom", json={"initial_state": state}, token=user.token
    ), 413, "M_TOO_LARGE")
    assert await api.create_room(user, initial_state=state[:100])


def one_time_keys(count: int) -> dict[str, str]:
    return {
        f"curve25519:K{i}": base64.b64encode(os.urandom(32)).decode().rstrip("=")
        for i in range(count)
    }


async def test_one_time_keys_per_upload_and_per_device_are_capped(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    api, user = await server_api(make_homeserver, http, {})
    assert_error(await api.request(
        "POST", "keys/upload", json={"one_time_keys": one_time_keys(201)}, token=user.token
    ), 413, "M_TOO_LARGE")
    counts = await api.ok(
        "POST", "keys/upload", json={"one_time_keys": one_time_keys(200)}, token=user.token
    )
    assert counts["one_time_key_counts"]["curve25519"] == 200

    api, user = await server_api(make_homeserver, http, {
        "quotas.max_one_time_keys_per_device": 5,
    }, "rhea")
    keys = one_time_keys(6)
    first, second = dict(list(keys.items())[:3]), dict(list(keys.items())[3:])
    await api.ok("POST", "keys/upload", json={"one_time_keys": first}, token=user.token)
    await api.ok("POST", "keys/upload", json={"one_time_keys": first}, token=user.token)
    assert_error(await api.request(
        "POST", "keys/upload", json={"one_time_keys": second}, token=user.token
    ), 403, "M_FORBIDDEN")


async def test_backed_up_keys_per_user_are_capped(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    api, user = await server_api(make_homeserver, http, {"quotas.max_backup_keys_per_user": 2})
    created = await api.ok("POST", "room_keys/version", json={
        "algorithm": ALGORITHM, "auth_data": auth_data()
    }, token=user.token)
    params = {"version": created["version"]}

    def keys(*sessions: str, tag: str = "data") -> dict[str, Any]:
        return {"rooms": {"!r:localhost": {"sessions": {s: key(tag=tag) for s in sessions}}}}

    await api.ok("PUT", "room_keys/keys", json=keys("s1"), token=user.token, params=params)
    assert_error(await api.request(
        "PUT", "room_keys/keys", json=keys("s2", "s3"), token=user.token, params=params
    ), 403, "M_FORBIDDEN")
    # Nothing of the refused write was kept; within the quota, writes go on.
    result = await api.ok(
        "PUT", "room_keys/keys", json=keys("s1", "s2", tag="new"), token=user.token,
        params=params,
    )
    assert result["count"] == 2


async def test_typing_is_rate_limited_per_user(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    limits = {
        f"rate_limits.{kind}": NO_LIMIT
        for kind in ("per_user", "per_ip", "registration", "login_failures")
    }
    api, user = await server_api(make_homeserver, http, {
        "rate_limits.enabled": True, **limits,
        "rate_limits.user_writes": {"per_second": 0.001, "burst": 3},
    })
    room_id = await api.create_room(user)
    path = f"rooms/{room_id}/typing/{user.user_id}"
    for typing in (True, False, True):
        await api.ok("PUT", path, json={"typing": typing, "timeout": 1000}, token=user.token)
    result = await api.request("PUT", path, json={"typing": False}, token=user.token)
    assert_error(result, 429, "M_LIMIT_EXCEEDED")
    assert result[1]["retry_after_ms"] > 0
    # Reads are not writes.
    await api.ok("GET", f"rooms/{room_id}/joined_members", token=user.token)
