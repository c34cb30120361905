"""`GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]`
(see homeserver/services/relations.py)."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.auth import require_requester
from homeserver.api.context import ROOMS
from homeserver.api.http import json_response, path_room_id, query_bool, query_int
from homeserver.errors import invalid_param
from homeserver.services.relations import Relations

routes = web.RouteTableDef()

PATH = "/_matrix/client/v1/rooms/{roomId}/relations/{eventId}"
DEFAULT_LIMIT = 50
MAX_LIMIT = 100


@routes.get(PATH)
@routes.get(PATH + "/{relType}")
@routes.get(PATH + "/{relType}/{eventType}")
async def relations(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    room_id = path_room_id(request)
    direction = request.query.get("dir", "b")
    if direction not in ("b", "f"):
        raise invalid_param("'dir' must be 'b' or 'f'")
    recurse = query_bool(request, "recurse") if "recurse" in request.query else None
    rooms = request.app[ROOMS]
    m = request.match_info
    return json_response(await Relations(rooms.db, rooms.reads).children(
        requester, room_id, m["eventId"], rel_type=m.get("relType"),
        event_type=m.get("eventType"), from_token=request.query.get("from"),
        to_token=request.query.get("to"),
        limit=query_int(request, "limit", DEFAULT_LIMIT, lo=1, hi=MAX_LIMIT),
        backwards=direction == "b", recurse=recurse,
    ))
