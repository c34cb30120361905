"""Client-Server routes for registration, login, token refresh, logout and whoami.

Registration goes through User-Interactive Authentication with the single stage
`m.login.dummy` (services/registration.py: sessions remember the first request's parameters,
and completing one twice answers the same user). Guest accounts (`kind=guest`) need
`registration.allow_guests`; upgrading one (`guest_access_token`) is an ordinary registration.
With `registration.require_token`, the flow starts with the stage `m.login.registration_token`,
whose tokens clients may check beforehand (`GET /v1/register/m.login.registration_token/
validity`, rate limited per address since it answers guesses).

An application service registers and logs in users of its namespaces with the type
`m.login.application_service` and its `as_token` (spec "Server admin style permissions"):
no stages, no password, and regardless of `registration.enabled`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiohttp import web

from homeserver.api.auth import require_as_token, require_requester
from homeserver.api.client_address import client_address
from homeserver.api.context import ACCOUNTS, CONFIG, RATELIMITER, REGISTRATION, REGISTRATION_TOKENS
from homeserver.api.http import (
    field_bool,
    field_obj,
    field_str,
    json_response,
    read_json_body,
    require_str,
)
from homeserver.api.uia import login_user, uia_request
from homeserver.api.well_known import configured_discovery
from homeserver.errors import MatrixError, forbidden, invalid_param
from homeserver.services.accounts import Session
from homeserver.services.ratelimit import address_key
from homeserver.services.registration import RegistrationParams
from homeserver.services.requester import NO_DEVICE

routes = web.RouteTableDef()

PREFIX = "/_matrix/client/v3"
PASSWORD_LOGIN = "m.login.password"
APPSERVICE_LOGIN = "m.login.application_service"


def _session_json(session: Session) -> dict[str, Any]:
    body: dict[str, Any] = {"user_id": session.user_id}
    if session.access_token is not None:
        body["access_token"] = session.access_token
        body["device_id"] = session.device_id
    if session.refresh_token is not None:
        body["refresh_token"] = session.refresh_token
        body["expires_in_ms"] = session.expires_in_ms
    return body


def _optional_bool(body: dict[str, Any], key: str) -> bool | None:
    """A boolean field, None when absent (a registration session may know it already)."""
    return field_bool(body, key) if key in body else None


@routes.post(f"{PREFIX}/register")
async def register(request: web.Request) -> web.Response:
    kind = request.query.get("kind", "user")
    if kind not in ("user", "guest"):
        raise invalid_param("'kind' must be 'user' or 'guest'")
    config = request.app[CONFIG].registration
    if kind == "guest":
        if not config.allow_guests:
            raise forbidden("Guest access is disabled on this homeserver")
        body = await read_json_body(request, allow_empty=True)
        session = await request.app[REGISTRATION].register_guest(
            field_str(body, "initial_device_display_name"), client_address(request)
        )
        return json_response(_session_json(session))
    body = await read_json_body(request)
    if body.get("type") == APPSERVICE_LOGIN:
        session = await request.app[REGISTRATION].register_for_appservice(
            require_as_token(request), _params(body), client_address(request)
        )
        return json_response(_session_json(session))
    if not config.enabled:
        raise forbidden("Registration is disabled on this homeserver")
    params = replace(
        _params(body), guest_user_id=await _guest(request, field_str(body, "guest_access_token"))
    )
    password = field_str(body, "password")
    # The password stays out of what the session remembers (it keeps a hash).
    uia = uia_request(request, {key: value for key, value in body.items() if key != "password"})
    session = await request.app[REGISTRATION].register(params, password, uia)
    return json_response(_session_json(session))


def _params(body: dict[str, Any]) -> RegistrationParams:
    """What a registration asks for, but the guest account it may upgrade."""
    return RegistrationParams(
        username=field_str(body, "username"), device_id=field_str(body, "device_id"),
        initial_device_display_name=field_str(body, "initial_device_display_name"),
        inhibit_login=_optional_bool(body, "inhibit_login"),
        refresh_token=_optional_bool(body, "refresh_token"),
    )


async def _guest(request: web.Request, token: str | None) -> str | None:
    """The guest account a registration upgrades: the owner of `guest_access_token`."""
    if token is None:
        return None
    owner = await request.app[ACCOUNTS].authenticate(token, client_address(request))
    if not owner.is_guest:
        raise forbidden("'guest_access_token' is not a guest's access token")
    return owner.user_id


@routes.get(f"{PREFIX}/register/available")
async def register_available(request: web.Request) -> web.Response:
    username = request.query.get("username")
    if username is None:
        raise MatrixError(400, "M_MISSING_PARAM", "Missing 'username' query parameter")
    await request.app[ACCOUNTS].check_username_available(username)
    return json_response({"available": True})


@routes.get("/_matrix/client/v1/register/m.login.registration_token/validity")
async def registration_token_validity(request: web.Request) -> web.Response:
    """Whether a token would pass the token stage now; with registration off every token is
    invalid, which the spec's 403 says."""
    request.app[RATELIMITER].check(
        "registration_token_validity", address_key(client_address(request))
    )
    if not request.app[CONFIG].registration.enabled:
        raise forbidden("Registration is disabled on this homeserver")
    token = request.query.get("token")
    if token is None:
        raise MatrixError(400, "M_MISSING_PARAM", "'token' is required")
    return json_response({"valid": await request.app[REGISTRATION_TOKENS].is_valid(token)})


@routes.get(f"{PREFIX}/login")
async def login_flows(request: web.Request) -> web.Response:
    return json_response({"flows": [{"type": PASSWORD_LOGIN}, {"type": APPSERVICE_LOGIN}]})


@routes.post(f"{PREFIX}/login")
async def login(request: web.Request) -> web.Response:
    body = await read_json_body(request)
    login_type = require_str(body, "type")
    if login_type == APPSERVICE_LOGIN:
        session = await _appservice_login(request, body)
    elif login_type == PASSWORD_LOGIN:
        session = await request.app[ACCOUNTS].login(
            login_user(body), require_str(body, "password"), device_id=field_str(body, "device_id"),
            device_display_name=field_str(body, "initial_device_display_name"),
            ip=client_address(request), refresh=field_bool(body, "refresh_token"),
        )
    else:
        raise MatrixError(400, "M_UNKNOWN", f"Bad login type {login_type!r}")
    response = _session_json(session)
    discovery = configured_discovery(request.app[CONFIG])
    if discovery is not None:
        response["well_known"] = discovery
    return json_response(response)


async def _appservice_login(request: web.Request, body: dict[str, Any]) -> Session:
    """`m.login.application_service`: a new device and token for a user of the service,
    named by `identifier` only (MSC2778 refuses the deprecated top-level `user`)."""
    registration = require_as_token(request)
    accounts = request.app[ACCOUNTS]
    if field_obj(body, "identifier") is None:
        raise MatrixError(400, "M_MISSING_PARAM", "'identifier' is required")
    user = login_user(body)
    user_id = accounts.local_user_id(user)
    if user_id is None:
        raise forbidden(f"{user!r} is not a user of this server")
    await accounts.appservice_users.check_login(registration, user_id)
    return await accounts.login_registered(
        user_id, device_id=field_str(body, "device_id"),
        device_display_name=field_str(body, "initial_device_display_name"),
        inhibit_login=False, ip=client_address(request), refresh=field_bool(body, "refresh_token"),
    )


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
    body = {"user_id": requester.user_id, "is_guest": requester.is_guest}
    if requester.device_id != NO_DEVICE:  # an application service's request may have none
        body["device_id"] = requester.device_id
    return json_response(body)
