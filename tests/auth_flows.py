"""Logging in and User-Interactive Authentication over the Client-Server API, for tests of
endpoints that sit behind a password login or a UIA challenge.
"""

from __future__ import annotations

from typing import Any

from tests.helpers import PASSWORD, MatrixApi, User, validate_response


def password_login(user: str, password: str = PASSWORD, **extra: Any) -> dict[str, Any]:
    return {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
        "password": password, **extra,
    }


PASSWORD_STAGE = "m.login.password"


def password_auth(
    user: User, session: str | None = None, password: str | None = None
) -> dict[str, Any]:
    auth: dict[str, Any] = {
        "type": PASSWORD_STAGE, "identifier": {"type": "m.id.user", "user": user.user_id},
        "password": password or user.password,
    }
    if session is not None:
        auth["session"] = session
    return auth


async def challenge(
    api: MatrixApi, method: str, path: str, body: dict[str, Any], token: str | None,
    schema: tuple[str, str],
) -> str:
    """Make the request without `auth`; check the 401 challenge and return its session."""
    status, result = await api.request(method, path, json=body, token=token)
    assert status == 401, result
    validate_response(schema[0], schema[1], method, 401, result)
    assert result["flows"] == [{"stages": [PASSWORD_STAGE]}]
    assert "errcode" not in result and result["completed"] == []
    session: str = result["session"]
    return session


async def with_uia(
    api: MatrixApi, user: User, method: str, path: str, body: dict[str, Any],
    schema: tuple[str, str], token: str | None = None,
) -> tuple[int, Any]:
    """The whole UIA dance: challenge, then the same request with the password stage."""
    token = token or user.token
    session = await challenge(api, method, path, body, token, schema)
    return await api.request(
        method, path, json={**body, "auth": password_auth(user, session)}, token=token
    )


async def login(api: MatrixApi, user: User, **extra: Any) -> User:
    body = await api.ok("POST", "login", json={
        "type": PASSWORD_STAGE, "identifier": {"type": "m.id.user", "user": user.user_id},
        "password": user.password, **extra,
    })
    return User(body["user_id"], body["access_token"], body["device_id"], user.password)


