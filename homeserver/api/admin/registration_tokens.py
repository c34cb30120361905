"""Registration tokens (Synapse's docs/admin_api/registration_tokens.md): list, create, read,
change and delete the tokens the `m.login.registration_token` stage accepts
(`registration.require_token`). Every value of the wrong type or out of range is 400
M_INVALID_PARAM, as Synapse answers those it checks; an unknown token is 404 M_NOT_FOUND."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from homeserver.api.admin.auth import ADMIN, log_admin_action, require_admin
from homeserver.api.admin.paging import query_flag
from homeserver.api.context import REGISTRATION_TOKENS
from homeserver.api.http import json_response, read_json_body
from homeserver.errors import invalid_param
from homeserver.services.registration_tokens import (
    DEFAULT_LENGTH,
    MAX_TOKEN_LENGTH,
    Change,
)
from storage.registration_tokens import RegistrationToken

routes = web.RouteTableDef()

TOKENS = ADMIN + "/v1/registration_tokens"
# What the columns hold: uses_allowed an integer, expiry_time milliseconds in JSON's safe range.
MAX_USES = 2**31 - 1
MAX_TIME = 2**53 - 1


def _token_json(token: RegistrationToken) -> dict[str, Any]:
    return {
        "token": token.token, "uses_allowed": token.uses_allowed, "pending": token.pending,
        "completed": token.completed, "expiry_time": token.expiry_time,
    }


def _integer(body: dict[str, Any], key: str, lo: int, hi: int) -> int | None:
    """An optional integer field in [lo, hi]; null or absent: None."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise invalid_param(f"'{key}' must be an integer from {lo} to {hi}, or null")
    return value


def _change(body: dict[str, Any], key: str, hi: int) -> Change:
    """A field of an update: None when absent (unchanged), else its new value (null
    included) in a 1-tuple."""
    return (_integer(body, key, 0, hi),) if key in body else None


@routes.get(TOKENS)
async def list_tokens(request: web.Request) -> web.Response:
    await require_admin(request)
    tokens = await request.app[REGISTRATION_TOKENS].list_tokens(query_flag(request, "valid"))
    return json_response({"registration_tokens": [_token_json(t) for t in tokens]})


@routes.post(TOKENS + "/new")
async def create_token(request: web.Request) -> web.Response:
    admin = await require_admin(request)
    body = await read_json_body(request, allow_empty=True)
    token = body.get("token")
    if token is not None and not isinstance(token, str):
        raise invalid_param("'token' must be a string")
    length = _integer(body, "length", 1, MAX_TOKEN_LENGTH)
    created = await request.app[REGISTRATION_TOKENS].create(
        token, _integer(body, "uses_allowed", 0, MAX_USES),
        _integer(body, "expiry_time", 0, MAX_TIME), length or DEFAULT_LENGTH,
    )
    log_admin_action(
        admin, "create_registration_token", token=created.token,
        uses_allowed=created.uses_allowed, expiry_time=created.expiry_time,
    )
    return json_response(_token_json(created))


@routes.get(TOKENS + "/{token}")
async def get_token(request: web.Request) -> web.Response:
    await require_admin(request)
    token = await request.app[REGISTRATION_TOKENS].get(request.match_info["token"])
    return json_response(_token_json(token))


@routes.put(TOKENS + "/{token}")
async def update_token(request: web.Request) -> web.Response:
    admin = await require_admin(request)
    body = await read_json_body(request, allow_empty=True)
    uses_allowed = _change(body, "uses_allowed", MAX_USES)
    expiry_time = _change(body, "expiry_time", MAX_TIME)
    token = request.match_info["token"]
    updated = await request.app[REGISTRATION_TOKENS].update(token, uses_allowed, expiry_time)
    log_admin_action(
        admin, "update_registration_token", token=token,
        uses_allowed=updated.uses_allowed, expiry_time=updated.expiry_time,
    )
    return json_response(_token_json(updated))


@routes.delete(TOKENS + "/{token}")
async def delete_token(request: web.Request) -> web.Response:
    admin = await require_admin(request)
    token = request.match_info["token"]
    await request.app[REGISTRATION_TOKENS].delete(token)
    log_admin_action(admin, "delete_registration_token", token=token)
    return json_response({})
