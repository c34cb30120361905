"""Shared-secret registration: `GET` and `POST /_synapse/admin/v1/register` (Synapse's
register_api.md), the one admin route that takes no access token: the MAC made with
`registration.shared_secret` is the credential (services/shared_secret.py)."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.admin.auth import ADMIN, audit
from homeserver.api.client_address import client_address
from homeserver.api.context import ACCOUNTS, SHARED_SECRET_REGISTRATION
from homeserver.api.http import field_str, json_response, read_json_body, require_str
from homeserver.errors import bad_json, invalid_param
from homeserver.services.admin_users import check_profile_fields, check_user_type
from homeserver.services.shared_secret import SharedSecretRequest

routes = web.RouteTableDef()

MAX_FIELD_LENGTH = 512  # Synapse's bound on username and password


@routes.get(ADMIN + "/v1/register")
async def get_nonce(request: web.Request) -> web.Response:
    return json_response({"nonce": request.app[SHARED_SECRET_REGISTRATION].new_nonce()})


@routes.post(ADMIN + "/v1/register")
async def register(request: web.Request) -> web.Response:
    registration = request.app[SHARED_SECRET_REGISTRATION]
    body = await read_json_body(request)
    registration.take_nonce(require_str(body, "nonce"))
    username, password = require_str(body, "username"), require_str(body, "password")
    if len(username) > MAX_FIELD_LENGTH or len(password) > MAX_FIELD_LENGTH:
        raise bad_json(f"'username' and 'password' are at most {MAX_FIELD_LENGTH} characters")
    admin = body.get("admin") or False
    if not isinstance(admin, bool):
        raise bad_json("'admin' must be a boolean")
    req = SharedSecretRequest(
        nonce=body["nonce"], username=username, password=password, admin=admin,
        mac=require_str(body, "mac"), displayname=field_str(body, "displayname"),
        user_type=field_str(body, "user_type"),
    )
    _check_encodable(req.username, req.password, req.mac, req.displayname, req.user_type)
    check_user_type(req.user_type)
    check_profile_fields(req.displayname, None)
    session = await registration.register(req, client_address(request))
    audit.info("shared-secret registration of %s (admin=%s)", session.user_id, admin)
    return json_response({
        "user_id": session.user_id,
        "access_token": session.access_token,
        "home_server": request.app[ACCOUNTS].server_name,
        "device_id": session.device_id,
    })


def _check_encodable(*values: str | None) -> None:
    """JSON may escape a lone surrogate (`"\\ud800"`), which no UTF-8 encodes: the MAC is
    made over UTF-8, and the database stores UTF-8. Anyone may POST here (no token), so such
    a field is a 400 here rather than an encoding error (a 500) further on."""
    for value in values:
        if value is None or value.isascii():
            continue
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise invalid_param("Strings may not hold lone surrogates") from None
