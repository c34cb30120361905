"""`GET /rooms/{roomId}/hierarchy` and `GET /room_summary/{roomIdOrAlias}` (client v1): see
homeserver/services/space_hierarchy.py."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.auth import access_token, require_requester
from homeserver.api.context import ROOMS
from homeserver.api.http import json_response, path_room_id, query_bool, query_int
from homeserver.services.space_hierarchy import SpaceHierarchy

routes = web.RouteTableDef()

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
DEFAULT_DEPTH = 3
MAX_DEPTH = 10


@routes.get("/_matrix/client/v1/rooms/{roomId}/hierarchy")
async def hierarchy(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    room_id = path_room_id(request)
    rooms = request.app[ROOMS]
    return json_response(await SpaceHierarchy(rooms.db, rooms.engine).hierarchy(
        requester, room_id,
        suggested_only=query_bool(request, "suggested_only"),
        max_depth=query_int(request, "max_depth", DEFAULT_DEPTH, lo=0, hi=MAX_DEPTH),
        limit=query_int(request, "limit", DEFAULT_LIMIT, lo=1, hi=MAX_LIMIT),
        from_token=request.query.get("from"),
    ))


@routes.get("/_matrix/client/v1/room_summary/{roomIdOrAlias}")
async def room_summary(request: web.Request) -> web.Response:
    """Authentication is optional here: a summary of a public room is for anyone."""
    user_id = None
    if access_token(request) is not None:
        user_id = (await require_requester(request)).user_id
    rooms = request.app[ROOMS]
    room_id = await rooms.resolve_room(request.match_info["roomIdOrAlias"])
    return json_response(await SpaceHierarchy(rooms.db, rooms.engine).summary(user_id, room_id))
