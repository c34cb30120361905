"""Client-Server routes for registration, login, token refresh, logout and whoami.

Registration uses User-Interactive Authentication with the single stage `m.login.dummy`: the
first request without `auth` is answered 401 with the flows, and a retry carrying a dummy `auth`
registers. The dummy stage proves nothing, so no session state is kept: the session ID is only
echoed. Guest accounts are not supported (`kind=guest` is 403).
"""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web

from homeserver.api.auth import require_requester
from homeserver.api.context import ACCOUNTS, CONFIG
from homeserver.api.http import (
    field_bool,
    field_obj,
    field_str,
    json_response,
    read_json_body,
    require_str,
)
from homeserver.errors import MatrixError, forbidden, invalid_param
from homeserver.services.accounts import Session

routes = web.RouteTableDef()

PREFIX = "/_matrix/client/v3"
DUMMY_STAGE = "m.login.dummy"
PASSWORD_LOGIN = "m.login.password"


def _uia_challenge(session: str | None) -> dict[str, Any]:
    return {
        "flows": [{"stages": [DUMMY_STAGE]}],
        "params": {},
        "session": session or secrets.token_urlsafe(16),
    }


def _session_json(session: Session) -> dict[str, Any]:
    body: dict[str, Any] = {"user_id": session.user_id}
    if session.access_token is not None:
        body["access_token"] = session.access_token
        body["device_id"] = session.device_id
    if session.refresh_token is not None:
        body["refresh_token"] = session.refresh_token
        body["expires_in_ms"] = session.expires_in_ms
    return body


@routes.post(f"{PREFIX}/register")
async def register(request: web.Request) -> web.Response:
    kind = request.query.get("kind", "user")
    if kind == "guest":
        raise forbidden("Guest access is not supported on this homeserver")
    if kind != "user":
        raise invalid_param("'kind' must be 'user' or 'guest'")
    if not request.app[CONFIG].registration.enabled:
        raise forbidden("Registration is disabled on this homeserver")
    body = await read_json_body(request)
    username = field_str(body, "username")
    password = field_str(body, "password")
    device_id = field_str(body, "device_id")
    display_name = field_str(body, "initial_device_display_name")
    inhibit_login = field_bool(body, "inhibit_login")
    refresh = field_bool(body, "refresh_token")
    auth = field_obj(body, "auth")
    accounts = request.app[ACCOUNTS]
    # The spec wants M_USER_IN_USE / M_INVALID_USERNAME before any authentication stage.
    if username is not None:
        await accounts.check_username_available(username)
    if auth is None:
        return json_response(_uia_challenge(None), status=401)
    auth_type = field_str(auth, "type")
    session_id = field_str(auth, "session")
    if auth_type is None:
        return json_response(_uia_challenge(session_id), status=401)
    if auth_type != DUMMY_STAGE:
        raise MatrixError(
            401, "M_UNRECOGNIZED", f"Unsupported authentication type {auth_type!r}",
            **_uia_challenge(session_id),
        )
    session = await accounts.register(
        username, password, device_id=device_id, device_display_name=display_name,
        inhibit_login=inhibit_login, ip=request.remote or "", refresh=refresh,
    )
    return json_response(_session_json(session))


@routes.get(f"{PREFIX}/register/available")
async def register_available(request: web.Request) -> web.Response:
    username = request.query.get("username")
    if username is None:
        raise MatrixError(400, "M_MISSING_PARAM", "Missing 'username' query parameter")
    await request.app[ACCOUNTS].check_username_available(username)
    return json_response({"available": True})


@routes.get(f"{PREFIX}/login")
async def login_flows(request: web.Request) -> web.Response:
    return json_response({"flows": [{"type": PASSWORD_LOGIN}]})


def login_user(body: dict[str, Any]) -> str:
    """Who a login (or a password stage of UIA) names: `identifier` (m.id.user), else the
    deprecated top-level `user`."""
    identifier = field_obj(body, "identifier")
    if identifier is not None:
        id_type = require_str(identifier, "type")
        if id_type != "m.id.user":
            raise MatrixError(400, "M_UNKNOWN", f"Unsupported identifier type {id_type!r}")
        return require_str(identifier, "user")
    user = field_str(body, "user")
    if user is None:
        raise MatrixError(400, "M_MISSING_PARAM", "'identifier' is required")
    return user


@routes.post(f"{PREFIX}/login")
async def login(request: web.Request) -> web.Response:
    body = await read_json_body(request)
    login_type = require_str(body, "type")
    if login_type != PASSWORD_LOGIN:
        raise MatrixError(400, "M_UNKNOWN", f"Bad login type {login_type!r}")
    user = login_user(body)
    password = require_str(body, "password")
    session = await request.app[ACCOUNTS].login(
        user, password, device_id=field_str(body, "device_id"),
        device_display_name=field_str(body, "initial_device_display_name"),
        ip=request.remote or "", refresh=field_bool(body, "refresh_token"),
    )
    response = _session_json(session)
    base_url = request.app[CONFIG].server.public_baseurl
    if base_url is not None:
        response["well_known"] = {"m.homeserver": {"base_url": base_url}}
    return json_response(response)


@routes.post(f"{PREFIX}/refresh")
async def refresh(request: web.Request) -> web.Response:
    body = await read_json_body(request)
    refresh_token = field_str(body, "refresh_token")
    if refresh_token is None:
        raise MatrixError(400, "M_MISSING_PARAM", "'refresh_token' is required")
    session = await request.app[ACCOUNTS].refresh(refresh_token)
    return json_response({
        "access_token": session.access_token, "refresh_token": session.refresh_token,
        "expires_in_ms": session.expires_in_ms,
    })


@routes.post(f"{PREFIX}/logout")
async def logout(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    await request.app[ACCOUNTS].logout(requester)
    return json_response({})


@routes.post(f"{PREFIX}/logout/all")
async def logout_all(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    await request.app[ACCOUNTS].logout_all(requester)
    return json_response({})


@routes.get(f"{PREFIX}/account/whoami")
async def whoami(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    return json_response(
        {"user_id": requester.user_id, "device_id": requester.device_id, "is_guest": False}
    )
