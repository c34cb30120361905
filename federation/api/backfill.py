"""History a peer lacks: `GET /backfill/{roomId}` (the given events and those before them,
newest first) and `POST /get_missing_events/{roomId}` (the gap between what the peer has and
what it was sent, oldest first) (server-server-api.md "Backfilling and retrieving missing
events")."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from federation.api.auth import authenticated
from federation.api.bodies import object_body
from federation.api.context import ROOM_READS
from federation.inbound_auth import AuthenticatedRequest
from federation.room_reads import MAX_BACKFILL_EVENTS
from homeserver.api.http import json_response, path_room_id, query_int
from homeserver.errors import MatrixError, bad_json, invalid_param

routes = web.RouteTableDef()
V1 = "/_matrix/federation/v1"
DEFAULT_MISSING_LIMIT = 10


@routes.get(V1 + "/backfill/{roomId}")
@authenticated
async def backfill(request: web.Request, auth: AuthenticatedRequest) -> web.Response:
    room_id = path_room_id(request)
    event_ids = request.query.getall("v", [])
    if not event_ids:
        raise MatrixError(400, "M_MISSING_PARAM", "'v' is required")
    if "limit" not in request.query:
        raise MatrixError(400, "M_MISSING_PARAM", "'limit' is required")
    limit = query_int(request, "limit", 0, lo=0, hi=MAX_BACKFILL_EVENTS)
    reads = request.app[ROOM_READS]
    pdus = await reads.backfill(auth.origin, room_id, event_ids, limit)
    return json_response(reads.transaction(pdus))


@routes.post(V1 + "/get_missing_events/{roomId}")
@authenticated
async def get_missing_events(request: web.Request, auth: AuthenticatedRequest) -> web.Response:
    room_id = path_room_id(request)
    body = object_body(auth)
    earliest, latest = _id_list(body, "earliest_events"), _id_list(body, "latest_events")
    limit, min_depth = _int(body, "limit", DEFAULT_MISSING_LIMIT), _int(body, "min_depth", 0)
    events = await request.app[ROOM_READS].missing_events(
        auth.origin, room_id, earliest, latest, limit, min_depth
    )
    return json_response({"events": events})


def _id_list(body: dict[str, Any], key: str) -> list[str]:
    if key not in body:
        raise MatrixError(400, "M_MISSING_PARAM", f"'{key}' is required")
    value = body[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_json(f"'{key}' must be an array of event IDs")
    return value


def _int(body: dict[str, Any], key: str, default: int) -> int:
    value = body.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad_json(f"'{key}' must be an integer")
    if value < 0:
        raise invalid_param(f"'{key}' must not be negative")
    return value
