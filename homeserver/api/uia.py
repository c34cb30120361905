"""Parsing what User-Interactive Authentication needs of a request: who a login or a password
stage names, and the `auth` object every endpoint behind UIA (and registration) shares."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from homeserver.api.client_address import client_address
from homeserver.api.http import field_obj, field_str, require_str
from homeserver.errors import MatrixError
from homeserver.services.uia import AuthSubmission, UiaRequest


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


def uia_request(request: web.Request, body: dict[str, Any]) -> UiaRequest:
    """The request as User-Interactive Authentication sees it: its endpoint (what a session
    is bound to), its body without `auth` (what it does), and its `auth`."""
    auth = field_obj(body, "auth")
    rest = {key: value for key, value in body.items() if key != "auth"}
    if auth is None:
        return UiaRequest(request.method, request.path, rest, None, client_address(request))
    user = login_user(auth) if "identifier" in auth or "user" in auth else None
    submission = AuthSubmission(
        type=field_str(auth, "type"), session=field_str(auth, "session"), user=user,
        password=field_str(auth, "password"), token=field_str(auth, "token"),
    )
    return UiaRequest(request.method, request.path, rest, submission, client_address(request))
