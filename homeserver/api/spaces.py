"""`GET /rooms/{roomId}/hierarchy` and `GET /room_summary/{roomIdOrAlias}` (client v1): see
homeserver/services/space_hierarchy.py."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.auth import access_token, require_requester
from homeserver.api.context import ROOMS, SPACES
from homeserver.api.http import json_response, path_room_id, query_bool, query_int
from homeserver.errors import invalid_param
from homeserver.protocol.identifiers import is_valid_server_name

routes = web.RouteTableDef()

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
DEFAULT_DEPTH = 3
MAX_DEPTH = 10
MAX_VIA = 10


@routes.get("/_matrix/client/v1/rooms/{roomId}/hierarchy")
async def hierarchy(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    room_id = path_room_id(request)
    return json_response(await request.app[SPACES].hierarchy(
        requester, room_id,
        suggested_only=query_bool(request, "suggested_only"),
        max_depth=query_int(request, "max_depth", DEFAULT_DEPTH, lo=0, hi=MAX_DEPTH),
        limit=query_int(request, "limit", DEFAULT_LIMIT, lo=1, hi=MAX_LIMIT),
        from_token=request.query.get("from"),
    ))


@routes.get("/_matrix/client/v1/room_summary/{roomIdOrAlias}")
async def room_summary(request: web.Request) -> web.Response:
    """Authentication is optional here: a summary of a public room is for anyone. A room
    this server is not in is asked of the servers in `via` (and those another server's alias
    names)."""
    user_id = None
    if access_token(request) is not None:
        user_id = (await require_requester(request)).user_id
    via = request.query.getall("via", [])
    if len(via) > MAX_VIA or not all(is_valid_server_name(s) for s in via):
        raise invalid_param(f"'via' must be at most {MAX_VIA} server names")
    room_id, via = await request.app[ROOMS].target(request.match_info["roomIdOrAlias"], via)
    return json_response(await request.app[SPACES].summary(user_id, room_id, via))
