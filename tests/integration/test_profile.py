"""The profile endpoints (displayname, avatar_url) against a running server, over HTTP
(test_profile_fields.py: `m.tz`, custom fields and member events)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import MatrixApi, validate_response


def profile_path(user_id: str, key: str | None = None) -> str:
    return f"profile/{user_id}" + (f"/{key}" if key else "")


async def test_new_user_profile_has_localpart_as_displayname(api: MatrixApi) -> None:
    alice = await api.register("alice")
    status, body = await api.request("GET", profile_path(alice.user_id))
    assert (status, body) == (200, {"displayname": "alice"})
    validate_response("profile.yaml", "/profile/{userId}", "get", 200, body)
    status, body = await api.request("GET", profile_path(alice.user_id, "displayname"))
    assert (status, body) == (200, {"displayname": "alice"})
    status, error = await api.request("GET", profile_path(alice.user_id, "avatar_url"))
    assert (status, error["errcode"]) == (404, "M_NOT_FOUND")


async def test_set_displayname_and_avatar(api: MatrixApi) -> None:
    alice = await api.register("alice")
    for key, value in (("displayname", "Alice Liddell"), ("avatar_url", "mxc://example/abc")):
        status, body = await api.request(
            "PUT", profile_path(alice.user_id, key), json={key: value}, token=alice.token
        )
        assert (status, body) == (200, {})
        assert await api.request("GET", profile_path(alice.user_id, key)) == (200, {key: value})
    status, body = await api.request("GET", profile_path(alice.user_id))
    assert body == {"displayname": "Alice Liddell", "avatar_url": "mxc://example/abc"}
    validate_response("profile.yaml", "/profile/{userId}", "get", 200, body)


async def test_cannot_set_someone_elses_profile(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    for key in ("displayname", "avatar_url"):
        status, error = await api.request(
            "PUT", profile_path(alice.user_id, key), json={key: "mallory"}, token=bob.token
        )
        assert (status, error["errcode"]) == (403, "M_FORBIDDEN")
    assert (await api.request("GET", profile_path(alice.user_id)))[1] == {"displayname": "alice"}


async def test_set_profile_requires_a_token(api: MatrixApi) -> None:
    alice = await api.register("alice")
    status, error = await api.request(
        "PUT", profile_path(alice.user_id, "displayname"), json={"displayname": "x"}
    )
    assert (status, error["errcode"]) == (401, "M_MISSING_TOKEN")


@pytest.mark.parametrize(
    ("key", "body", "errcode"),
    [
        ("displayname", {}, "M_MISSING_PARAM"),
        ("displayname", {"displayname": 5}, "M_BAD_JSON"),
        ("avatar_url", {"avatar_url": None}, "M_BAD_JSON"),
        ("avatar_url", {"avatar_url": {"url": "mxc://a/b"}}, "M_BAD_JSON"),
        ("displayname", {"displayname": "x" * 1000}, "M_INVALID_PARAM"),
        ("Not-A-Key", {"Not-A-Key": "x"}, "M_INVALID_PARAM"),
    ],
)
async def test_set_profile_bad_input(
    api: MatrixApi, key: str, body: dict[str, Any], errcode: str
) -> None:
    alice = await api.register("alice")
    status, error = await api.request(
        "PUT", profile_path(alice.user_id, key), json=body, token=alice.token
    )
    assert (status, error["errcode"]) == (400, errcode)


async def test_set_profile_malformed_json(api: MatrixApi) -> None:
    alice = await api.register("alice")
    status, error = await api.request(
        "PUT", profile_path(alice.user_id, "displayname"), raw=b"{oops", token=alice.token,
        headers={"Content-Type": "application/json"},
    )
    assert (status, error["errcode"]) == (400, "M_NOT_JSON")


async def test_unknown_and_invalid_users(api: MatrixApi) -> None:
    await api.register("alice")
    status, error = await api.request("GET", profile_path("@nobody:localhost"))
    assert (status, error["errcode"]) == (404, "M_NOT_FOUND")
    status, error = await api.request("GET", profile_path("@nobody:localhost", "displayname"))
    assert (status, error["errcode"]) == (404, "M_NOT_FOUND")
    status, error = await api.request("GET", profile_path("not-a-user-id"))
    assert (status, error["errcode"]) == (400, "M_INVALID_PARAM")
