"""The Public Room Directory over federation: `GET` and `POST /_matrix/federation/v1/publicRooms`.

The listing is the client API's own (`DirectoryService.public_rooms`): one query, one order and
one pagination token for both APIs, and the request is parsed by the same functions, since the
spec gives it the same shape (application services' networks included).
"""

from __future__ import annotations

from aiohttp import web

from federation.api.auth import authenticated
from federation.api.bodies import object_body
from federation.api.context import DIRECTORY
from federation.inbound_auth import AuthenticatedRequest
from homeserver.api.directory import MAX_ROOMS_LIMIT, public_rooms_params, public_rooms_query
from homeserver.api.http import json_response, query_int

routes = web.RouteTableDef()

PATH = "/_matrix/federation/v1/publicRooms"


@routes.get(PATH)
@authenticated
async def get_public_rooms(request: web.Request, auth: AuthenticatedRequest) -> web.Response:
    # limit 0 or absent means "no limit" here: the largest page, with a token for the rest.
    limit = query_int(request, "limit", 0, lo=0, hi=MAX_ROOMS_LIMIT) or MAX_ROOMS_LIMIT
    query = public_rooms_params(request, limit)
    return json_response(await request.app[DIRECTORY].public_rooms(query))


@routes.post(PATH)
@authenticated
async def query_public_rooms(request: web.Request, auth: AuthenticatedRequest) -> web.Response:
    query = public_rooms_query(object_body(auth))
    return json_response(await request.app[DIRECTORY].public_rooms(query))
