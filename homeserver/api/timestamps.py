"""`GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event`: the event of a room nearest a
point in time, in the direction asked (the spec's "jump to date"); see
homeserver/services/timestamps.py. The query's parsing is shared with the federation endpoint.
"""

from __future__ import annotations

from aiohttp import web

from homeserver.api.auth import require_requester
from homeserver.api.context import TIMESTAMPS
from homeserver.api.http import json_response, path_room_id
from homeserver.errors import MatrixError, invalid_param

routes = web.RouteTableDef()

MAX_TS = 2**63 - 1


def ts_and_direction(request: web.Request) -> tuple[int, bool]:
    """The required `ts` and `dir` query parameters: (timestamp, forwards)."""
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
    return ts, direction == "f"


@routes.get("/_matrix/client/v1/rooms/{roomId}/timestamp_to_event")
async def timestamp_to_event(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    room_id = path_room_id(request)
    ts, forwards = ts_and_direction(request)
    return json_response(
        await request.app[TIMESTAMPS].event_near(requester, room_id, ts, forwards)
    )
