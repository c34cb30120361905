"""Server-side key backups: `/room_keys/version` and `/room_keys/keys` at all three levels."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from tests.e2e_keys import ALGORITHM, auth_data, key
from tests.helpers import MatrixApi, User, validate_response

ROOM = "!room:localhost"
OTHER_ROOM = "!other:localhost"
# Megolm session IDs are standard base64: '/' and '+' travel percent-encoded in paths.
SESSION = "ab/cd+ef"


def validate_update(body: Any) -> None:
    """Every keys PUT/DELETE answers a RoomKeysUpdateResponse (`etag`, `count`)."""
    validate_response("key_backup.yaml", "/room_keys/keys", "put", 200, body)


def session_path(room_id: str = ROOM, session_id: str = SESSION) -> str:
    return f"room_keys/keys/{quote(room_id)}/{quote(session_id, safe='')}"


async def create_version(api: MatrixApi, user: User, public_key: str = "pubkey") -> str:
    body = await api.ok(
        "POST", "room_keys/version",
        json={"algorithm": ALGORITHM, "auth_data": auth_data(public_key)}, token=user.token,
    )
    validate_response("key_backup.yaml", "/room_keys/version", "post", 200, body)
    version: str = body["version"]
    return version


async def put_session(
    api: MatrixApi, user: User, version: str, data: dict[str, Any], session_id: str = SESSION
) -> dict[str, Any]:
    body: dict[str, Any] = await api.ok(
        "PUT", session_path(session_id=session_id), json=data, token=user.token,
        params={"version": version},
    )
    validate_update(body)
    return body


async def get_session(api: MatrixApi, user: User, version: str) -> dict[str, Any]:
    body: dict[str, Any] = await api.ok(
        "GET", session_path(), token=user.token, params={"version": version}
    )
    validate_response(
        "key_backup.yaml", "/room_keys/keys/{roomId}/{sessionId}", "get", 200, body
    )
    return body


async def test_version_lifecycle(api: MatrixApi) -> None:
    alice = await api.register("alice")
    status, body = await api.request("GET", "room_keys/version", token=alice.token)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")

    v1 = await create_version(api, alice, "key1")
    v2 = await create_version(api, alice, "key2")
    assert v1 != v2
    latest = await api.ok("GET", "room_keys/version", token=alice.token)
    validate_response("key_backup.yaml", "/room_keys/version", "get", 200, latest)
    assert latest["version"] == v2 and latest["auth_data"]["public_key"] == "key2"
    assert latest["count"] == 0 and latest["algorithm"] == ALGORITHM
    first = await api.ok("GET", f"room_keys/version/{v1}", token=alice.token)
    validate_response("key_backup.yaml", "/room_keys/version/{version}", "get", 200, first)
    assert first["auth_data"]["public_key"] == "key1"

    updated = {"algorithm": ALGORITHM, "auth_data": auth_data("key3"), "version": v2}
    body = await api.ok("PUT", f"room_keys/version/{v2}", json=updated, token=alice.token)
    validate_response("key_backup.yaml", "/room_keys/version/{version}", "put", 200, body)
    latest = await api.ok("GET", f"room_keys/version/{v2}", token=alice.token)
    assert latest["auth_data"]["public_key"] == "key3"

    body = await api.ok("DELETE", f"room_keys/version/{v2}", token=alice.token)
    validate_response("key_backup.yaml", "/room_keys/version/{version}", "delete", 200, body)
    await api.ok("DELETE", f"room_keys/version/{v2}", token=alice.token)  # again: still 200
    status, body = await api.request("GET", f"room_keys/version/{v2}", token=alice.token)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    # The deleted version's number is not reused, and the older one is current again.
    assert (await api.ok("GET", "room_keys/version", token=alice.token))["version"] == v1
    v3 = await create_version(api, alice)
    assert v3 not in (v1, v2)


async def test_versions_are_per_user(api: MatrixApi) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    version = await create_version(api, alice)
    status, body = await api.request("GET", f"room_keys/version/{version}", token=bob.token)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await api.request("DELETE", f"room_keys/version/{version}", token=bob.token)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def test_unknown_algorithm_takes_any_auth_data(api: MatrixApi) -> None:
    """Algorithms the server does not know are the clients' business (as in Synapse)."""
    alice = await api.register("alice")
    info = {"algorithm": "org.example.backup.v9", "auth_data": {"anything": [1, {"x": None}]}}
    version = (await api.ok("POST", "room_keys/version", json=info, token=alice.token))["version"]
    body = await api.ok("GET", f"room_keys/version/{version}", token=alice.token)
    assert {k: body[k] for k in info} == info
    await api.ok("PUT", f"room_keys/version/{version}", token=alice.token,
                 json={**info, "auth_data": {}})


async def test_version_errors(api: MatrixApi) -> None:
    alice = await api.register("alice")
    version = await create_version(api, alice)
    cases: list[tuple[str, str, Any, int, str]] = [
        ("POST", "room_keys/version", {"auth_data": auth_data()}, 400, "M_BAD_JSON"),
        ("POST", "room_keys/version", {"algorithm": ALGORITHM}, 400, "M_BAD_JSON"),
        ("POST", "room_keys/version", {"algorithm": 7, "auth_data": {}}, 400, "M_BAD_JSON"),
        ("POST", "room_keys/version", {"algorithm": ALGORITHM, "auth_data": []}, 400,
         "M_BAD_JSON"),
        ("POST", "room_keys/version", {"algorithm": ALGORITHM, "auth_data": {}}, 400,
         "M_INVALID_PARAM"),
        ("PUT", f"room_keys/version/{version}",
         {"algorithm": "m.other", "auth_data": auth_data()}, 400, "M_INVALID_PARAM"),
        ("PUT", f"room_keys/version/{version}",
         {"algorithm": ALGORITHM, "auth_data": auth_data(), "version": "999"}, 400,
         "M_INVALID_PARAM"),
        ("PUT", f"room_keys/version/{version}",
         {"algorithm": ALGORITHM, "auth_data": auth_data(), "version": 1}, 400, "M_BAD_JSON"),
        ("PUT", "room_keys/version/999", {"algorithm": ALGORITHM, "auth_data": auth_data()},
         404, "M_NOT_FOUND"),
        ("GET", "room_keys/version/999", None, 404, "M_NOT_FOUND"),
        ("GET", "room_keys/version/not-a-number", None, 404, "M_NOT_FOUND"),
        ("GET", "room_keys/version/99999999999999999999999", None, 404, "M_NOT_FOUND"),
        ("DELETE", "room_keys/version/999", None, 404, "M_NOT_FOUND"),
    ]
    for method, path, body, status, errcode in cases:
        got = await api.request(method, path, json=body, token=alice.token)
        assert got[0] == status and got[1]["errcode"] == errcode, (method, path, body, got)
    got = await api.request("POST", "room_keys/version", raw=b"[", token=alice.token)
    assert got[0] == 400 and got[1]["errcode"] == "M_NOT_JSON"
    got = await api.request("GET", "room_keys/version")
    assert got[0] == 401 and got[1]["errcode"] == "M_MISSING_TOKEN"


async def test_keys_at_all_three_levels(api: MatrixApi) -> None:
    alice = await api.register("alice")
    version = await create_version(api, alice)
    params = {"version": version}

    await put_session(api, alice, version, key(tag="one"))
    room_body = {"sessions": {"s2": key(tag="two"), "s3": key(tag="three")}}
    result = await api.ok(
        "PUT", f"room_keys/keys/{quote(ROOM)}", json=room_body, token=alice.token, params=params
    )
    validate_update(result)
    all_body = {"rooms": {OTHER_ROOM: {"sessions": {"s4": key(tag="four")}}}}
    result = await api.ok("PUT", "room_keys/keys", json=all_body, token=alice.token,
                          params=params)
    validate_update(result)
    assert result["count"] == 4

    assert (await get_session(api, alice, version))["session_data"]["ciphertext"] == "one"
    room = await api.ok("GET", f"room_keys/keys/{quote(ROOM)}", token=alice.token,
                        params=params)
    validate_response("key_backup.yaml", "/room_keys/keys/{roomId}", "get", 200, room)
    assert sorted(room["sessions"]) == sorted([SESSION, "s2", "s3"])
    everything = await api.ok("GET", "room_keys/keys", token=alice.token, params=params)
    validate_response("key_backup.yaml", "/room_keys/keys", "get", 200, everything)
    assert everything["rooms"][OTHER_ROOM]["sessions"]["s4"] == key(tag="four")
    assert sorted(everything["rooms"]) == sorted([ROOM, OTHER_ROOM])
    empty_room = await api.ok("GET", "room_keys/keys/!none:localhost", token=alice.token,
                              params=params)
    assert empty_room == {"sessions": {}}

    deleted = await api.ok("DELETE", session_path(), token=alice.token, params=params)
    validate_update(deleted)
    assert deleted["count"] == 3
    status, body = await api.request("GET", session_path(), token=alice.token, params=params)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    deleted = await api.ok("DELETE", f"room_keys/keys/{quote(ROOM)}", token=alice.token,
                           params=params)
    validate_update(deleted)
    assert deleted["count"] == 1
    deleted = await api.ok("DELETE", "room_keys/keys", token=alice.token, params=params)
    validate_update(deleted)
    assert deleted["count"] == 0
    assert await api.ok("GET", "room_keys/keys", token=alice.token, params=params) == {
        "rooms": {}
    }


async def test_replacement_rules_for_a_stored_session(api: MatrixApi) -> None:
    """Verified beats unverified, then the lower first_message_index, then the lower
    forwarded_count; a key that is no better leaves the stored one alone."""
    alice = await api.register("alice")
    version = await create_version(api, alice)
    steps: list[tuple[dict[str, Any], str]] = [
        (key(5, 2, False, "a"), "a"),  # first upload is stored
        (key(6, 0, False, "b"), "a"),  # higher index: kept a
        (key(4, 3, False, "c"), "c"),  # lower index wins even when forwarded more
        (key(4, 3, False, "d"), "c"),  # a tie keeps the stored key
        (key(4, 1, False, "e"), "e"),  # same index, fewer forwards
        (key(9, 9, True, "f"), "f"),  # verified beats unverified whatever the index
        (key(0, 0, False, "g"), "f"),  # unverified never replaces verified
        (key(8, 9, True, "h"), "h"),  # among verified, the lower index wins
    ]
    for data, expected in steps:
        await put_session(api, alice, version, data)
        stored = await get_session(api, alice, version)
        assert stored["session_data"]["ciphertext"] == expected, (data, stored)


async def test_etag_and_count_follow_the_stored_keys(api: MatrixApi) -> None:
    alice = await api.register("alice")
    version = await create_version(api, alice)
    info = await api.ok("GET", f"room_keys/version/{version}", token=alice.token)
    assert info["count"] == 0

    first = await put_session(api, alice, version, key(3))
    assert first["count"] == 1 and first["etag"] != info["etag"]
    unchanged = await put_session(api, alice, version, key(5))  # not better: nothing stored
    assert unchanged == first
    better = await put_session(api, alice, version, key(1))
    assert better["count"] == 1 and better["etag"] != first["etag"]
    second = await put_session(api, alice, version, key(), session_id="other")
    assert second["count"] == 2
    info = await api.ok("GET", f"room_keys/version/{version}", token=alice.token)
    assert (info["count"], info["etag"]) == (2, second["etag"])


async def test_writing_to_an_old_version_is_refused(api: MatrixApi) -> None:
    alice = await api.register("alice")
    status, body = await api.request(
        "PUT", session_path(), json=key(), token=alice.token, params={"version": "1"}
    )
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")  # no backup at all

    old = await create_version(api, alice)
    await put_session(api, alice, old, key(tag="old"))
    current = await create_version(api, alice)
    for version in (old, "junk"):
        status, body = await api.request(
            "PUT", session_path(), json=key(), token=alice.token, params={"version": version}
        )
        assert status == 403, body
        assert body["errcode"] == "M_WRONG_ROOM_KEYS_VERSION"
        assert body["current_version"] == current
    # The old version can still be read (restoring from it) but holds only its own keys.
    assert (await get_session(api, alice, old))["session_data"]["ciphertext"] == "old"
    status, body = await api.request(
        "GET", session_path(), token=alice.token, params={"version": current}
    )
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    # A deleted version's keys are gone with it.
    await api.ok("DELETE", f"room_keys/version/{old}", token=alice.token)
    status, body = await api.request(
        "GET", "room_keys/keys", token=alice.token, params={"version": old}
    )
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def test_key_errors(api: MatrixApi) -> None:
    alice = await api.register("alice")
    version = await create_version(api, alice)
    params = {"version": version}
    room = f"room_keys/keys/{quote(ROOM)}"
    cases: list[tuple[str, Any, dict[str, str] | None, int, str]] = [
        (session_path(), key(), None, 400, "M_MISSING_PARAM"),
        (session_path(), {**key(), "first_message_index": -1}, params, 400, "M_BAD_JSON"),
        (session_path(), {**key(), "first_message_index": 2**40}, params, 400, "M_BAD_JSON"),
        (session_path(), {**key(), "first_message_index": "1"}, params, 400, "M_BAD_JSON"),
        (session_path(), {**key(), "forwarded_count": True}, params, 400, "M_BAD_JSON"),
        (session_path(), {**key(), "is_verified": "yes"}, params, 400, "M_BAD_JSON"),
        (session_path(), {**key(), "session_data": "x"}, params, 400, "M_BAD_JSON"),
        (session_path(), {"is_verified": False}, params, 400, "M_BAD_JSON"),
        (session_path("not-a-room"), key(), params, 400, "M_INVALID_PARAM"),
        (room, {"sessions": []}, params, 400, "M_BAD_JSON"),
        (room, {}, params, 400, "M_BAD_JSON"),
        (room, {"sessions": {"s": "x"}}, params, 400, "M_BAD_JSON"),
        ("room_keys/keys", {"rooms": {"bad": {"sessions": {}}}}, params, 400,
         "M_INVALID_PARAM"),
        ("room_keys/keys", {"rooms": {ROOM: []}}, params, 400, "M_BAD_JSON"),
        ("room_keys/keys", {}, params, 400, "M_BAD_JSON"),
        ("room_keys/keys", {"rooms": {ROOM: {"sessions": {"s": {**key(), "session_data": {
            "nul": "\u0000"}}}}}}, params, 400, "M_INVALID_PARAM"),
    ]
    for path, body, query, status, errcode in cases:
        got = await api.request("PUT", path, json=body, token=alice.token, params=query)
        assert got[0] == status and got[1]["errcode"] == errcode, (path, body, got)
    for method in ("GET", "DELETE"):
        got = await api.request(method, "room_keys/keys", token=alice.token)
        assert got[0] == 400 and got[1]["errcode"] == "M_MISSING_PARAM"
        got = await api.request(method, "room_keys/keys", token=alice.token,
                                params={"version": "999"})
        assert got[0] == 404 and got[1]["errcode"] == "M_NOT_FOUND"
    # None of the refused writes stored anything.
    info = await api.ok("GET", f"room_keys/version/{version}", token=alice.token)
    assert info["count"] == 0


async def test_concurrent_creates_get_distinct_versions(api: MatrixApi) -> None:
    alice = await api.register("alice")
    versions = await asyncio.gather(*(create_version(api, alice, f"k{i}") for i in range(10)))
    assert sorted(versions, key=int) == [str(n) for n in range(1, 11)]
    latest = await api.ok("GET", "room_keys/version", token=alice.token)
    assert latest["version"] == "10"
