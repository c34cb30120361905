"""Filter upload/download and account data (global and per room), including in /sync."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.helpers import MatrixApi, validate_response


async def test_filter_round_trip(api: MatrixApi) -> None:
    alice = await api.register("alice")
    flt = {"room": {"timeline": {"limit": 5, "types": ["m.room.*"]}}, "event_fields": ["type"]}
    status, body = await api.request(
        "POST", f"user/{alice.user_id}/filter", json=flt, token=alice.token
    )
    assert status == 200
    validate_response("filter.yaml", "/user/{userId}/filter", "post", 200, body)
    status, got = await api.request(
        "GET", f"user/{alice.user_id}/filter/{body['filter_id']}", token=alice.token
    )
    assert (status, got) == (200, flt)


async def test_filter_errors(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    path = f"user/{alice.user_id}/filter"
    status, body = await api.request("POST", path, json={}, token=bob.token)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    for bad in ({"room": {"timeline": {"limit": "ten"}}}, {"event_fields": "type"},
                {"room": {"rooms": [1]}}, {"event_format": "html"}):
        status, body = await api.request("POST", path, json=bad, token=alice.token)
        assert (status, body["errcode"]) == (400, "M_BAD_JSON"), bad
    status, body = await api.request("POST", path, raw=b"{nope", token=alice.token)
    assert (status, body["errcode"]) == (400, "M_NOT_JSON")
    _, created = await api.request("POST", path, json={}, token=alice.token)
    for filter_id in ("999999", "abc", "9" * 30):
        status, body = await api.request("GET", f"{path}/{filter_id}", token=alice.token)
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND"), filter_id
    status, body = await api.request(
        "GET", f"user/{bob.user_id}/filter/{created['filter_id']}", token=bob.token
    )
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def test_global_account_data_round_trip_and_sync(api: MatrixApi) -> None:
    alice = await api.register("alice")
    path = f"user/{alice.user_id}/account_data/org.example.settings"
    status, body = await api.request("GET", path, token=alice.token)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    since = (await api.sync(alice))["next_batch"]
    poll = asyncio.create_task(api.sync(alice, since=since, timeout=20000))
    await api.ok("PUT", path, json={"theme": "dark"}, token=alice.token)
    body = await asyncio.wait_for(poll, 10)
    assert body["account_data"]["events"] == [
        {"type": "org.example.settings", "content": {"theme": "dark"}}
    ]
    assert await api.ok("GET", path, token=alice.token) == {"theme": "dark"}
    again = await api.sync(alice, since=body["next_batch"])
    assert again["account_data"]["events"] == []
    initial = await api.sync(alice)
    assert {"type": "org.example.settings", "content": {"theme": "dark"}} \
        in initial["account_data"]["events"]


async def test_room_account_data_in_sync(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room_id = await api.create_room(alice)
    since = (await api.sync(alice))["next_batch"]
    path = f"user/{alice.user_id}/rooms/{room_id}/account_data/m.tag"
    await api.ok("PUT", path, json={"tags": {"u.work": {}}}, token=alice.token)
    body = await api.sync(alice, since=since)
    validate_response("sync.yaml", "/sync", "get", 200, body)
    room = body["rooms"]["join"][room_id]
    assert room["account_data"]["events"] == [
        {"type": "m.tag", "content": {"tags": {"u.work": {}}}}
    ]
    assert room["timeline"]["events"] == []
    assert body["account_data"]["events"] == []
    assert await api.ok("GET", path, token=alice.token) == {"tags": {"u.work": {}}}


async def test_account_data_errors(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    base = f"user/{alice.user_id}"

    async def check(method: str, path: str, expected: tuple[int, str], **kw: Any) -> None:
        status, body = await api.request(method, path, **kw)
        assert (status, body["errcode"]) == expected, (method, path)

    await check("GET", f"{base}/account_data/x.y", (403, "M_FORBIDDEN"), token=bob.token)
    await check("PUT", f"{base}/account_data/x.y", (403, "M_FORBIDDEN"), json={},
                token=bob.token)
    for managed in ("m.fully_read", "m.push_rules"):
        await check("PUT", f"{base}/account_data/{managed}", (405, "M_BAD_JSON"), json={},
                    token=alice.token)
        await check("PUT", f"{base}/rooms/!r:localhost/account_data/{managed}",
                    (405, "M_BAD_JSON"), json={}, token=alice.token)
    await check("PUT", f"{base}/account_data/x.y", (400, "M_NOT_JSON"), raw=b"nope",
                token=alice.token)
    await check("PUT", f"{base}/account_data/x.y", (400, "M_BAD_JSON"), json=[1],
                token=alice.token)
    await check("GET", f"{base}/rooms/not-a-room/account_data/x.y", (400, "M_INVALID_PARAM"),
                token=alice.token)
    await check("GET", f"{base}/rooms/!r:localhost/account_data/x.y", (404, "M_NOT_FOUND"),
                token=alice.token)
    await check("GET", f"{base}/account_data/x.y", (401, "M_MISSING_TOKEN"))
