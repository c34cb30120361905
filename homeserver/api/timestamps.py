"""`GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event`: the event of a room nearest a
point in time, in the direction asked (the spec's "jump to date").

Only the events this server holds are searched (asking other servers, federation
`/timestamp_to_event`, is not built). Of the `CANDIDATES` nearest the time, the first the user
may see is the answer; none is 404 M_NOT_FOUND.
"""

from __future__ import annotations

import asyncpg
from aiohttp import web

from homeserver.api.auth import require_requester
from homeserver.api.context import ROOMS
from homeserver.api.http import json_response, path_room_id
from homeserver.errors import MatrixError, invalid_param, not_found
from homeserver.protocol.state_keys import CREATE
from homeserver.services.event_views import filter_visible, load_events
from storage import events as events_store

routes = web.RouteTableDef()

CANDIDATES = 20
MAX_TS = 2**63 - 1


@routes.get("/_matrix/client/v1/rooms/{roomId}/timestamp_to_event")
async def timestamp_to_event(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    room_id = path_room_id(request)
    raw_ts, direction = request.query.get("ts"), request.query.get("dir")
    if raw_ts is None or direction is None:
        raise MatrixError(400, "M_MISSING_PARAM", "'ts' and 'dir' are required")
    if direction not in ("f", "b"):
        raise invalid_param("'dir' must be 'f' or 'b'")
    try:
        ts = int(raw_ts)
    except ValueError:
        raise invalid_param("'ts' must be an integer") from None
    if not 0 <= ts <= MAX_TS:
        raise invalid_param("'ts' is out of range")
    rooms = request.app[ROOMS]
    # 403 for a room the user may not read, 404 for one that doesn't exist.
    await rooms.reads.state_event(requester, room_id, *CREATE)

    async def find(conn: asyncpg.Connection) -> dict[str, object]:
        ids = await events_store.get_events_near_ts(
            conn, room_id, ts, forwards=direction == "f", limit=CANDIDATES
        )
        visible = await filter_visible(
            conn, rooms.engine, requester.user_id, await load_events(conn, ids)
        )
        if not visible:
            raise not_found(f"No event found {'after' if direction == 'f' else 'before'} {ts}")
        pdu = (await rooms.engine.get_pdus(conn, [visible[0].event_id]))[visible[0].event_id]
        return {"event_id": visible[0].event_id, "origin_server_ts": pdu["origin_server_ts"]}

    return json_response(await rooms.db.run(find))
