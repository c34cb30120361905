"""`GET /_matrix/client/v1/rooms/{roomId}/threads` (see homeserver/services/threads.py)."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.auth import require_requester
from homeserver.api.context import ROOMS
from homeserver.api.http import json_response, path_room_id, query_int
from homeserver.errors import invalid_param
from homeserver.services.threads import Threads

routes = web.RouteTableDef()

DEFAULT_LIMIT = 50
MAX_LIMIT = 100


@routes.get("/_matrix/client/v1/rooms/{roomId}/threads")
async def threads(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    room_id = path_room_id(request)
    include = request.query.get("include", "all")
    if include not in ("all", "participated"):
        raise invalid_param("'include' must be 'all' or 'participated'")
    rooms = request.app[ROOMS]
    return json_response(await Threads(rooms.db, rooms.reads).threads(
        requester, room_id, participated_only=include == "participated",
        from_token=request.query.get("from"),
        limit=query_int(request, "limit", DEFAULT_LIMIT, lo=1, hi=MAX_LIMIT),
    ))
