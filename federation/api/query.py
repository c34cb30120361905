"""The federation query API, for signed requests: `query/profile` (a local user's profile)
and `query/directory` (what a local alias points to)."""

from __future__ import annotations

from aiohttp import web

from federation.api.auth import authenticated
from federation.api.context import QUERIES
from federation.inbound_auth import AuthenticatedRequest
from homeserver.api.http import json_response
from homeserver.errors import MatrixError

routes = web.RouteTableDef()


@routes.get("/_matrix/federation/v1/query/profile")
@authenticated
async def query_profile(request: web.Request, auth: AuthenticatedRequest) -> web.Response:
    user_id = request.query.get("user_id")
    if user_id is None:
        raise MatrixError(400, "M_MISSING_PARAM", "'user_id' is required")
    field = request.query.get("field")
    return json_response(await request.app[QUERIES].profile(user_id, field))


@routes.get("/_matrix/federation/v1/query/directory")
@authenticated
async def query_directory(request: web.Request, auth: AuthenticatedRequest) -> web.Response:
    alias = request.query.get("room_alias")
    if alias is None:
        raise MatrixError(400, "M_MISSING_PARAM", "'room_alias' is required")
    return json_response(await request.app[QUERIES].room_alias(alias))
