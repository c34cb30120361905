"""`GET /_matrix/federation/v1/timestamp_to_event/{roomId}` (server-server-api.md "Timestamp
to event"): the event this server holds nearest a time, for a server whose client asked
`timestamp_to_event` where its own copy of the room has a gap."""

from __future__ import annotations

from aiohttp import web

from federation.api.auth import authenticated
from federation.api.context import ROOM_READS
from federation.inbound_auth import AuthenticatedRequest
from homeserver.api.http import json_response, path_room_id
from homeserver.api.timestamps import ts_and_direction

routes = web.RouteTableDef()


@routes.get("/_matrix/federation/v1/timestamp_to_event/{roomId}")
@authenticated
async def timestamp_to_event(request: web.Request, auth: AuthenticatedRequest) -> web.Response:
    room_id = path_room_id(request)
    ts, forwards = ts_and_direction(request)
    return json_response(
        await request.app[ROOM_READS].event_near(auth.origin, room_id, ts, forwards)
    )
