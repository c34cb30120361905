"""Routes of the deprecated r0-era sync API (see homeserver/services/legacy_sync.py)."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.auth import require_requester
from homeserver.api.context import ROOMS, SYNC
from homeserver.api.http import (
    json_response,
    path_room_id,
    query_bool,
    query_int,
    query_token,
    valid_room_id,
)
from homeserver.services.legacy_sync import LegacySync

routes = web.RouteTableDef()

V3 = "/_matrix/client/v3"
# What Synapse waits when /events is called without a timeout.
DEFAULT_TIMEOUT_MS = 30_000
MAX_TIMEOUT_MS = 2**31
DEFAULT_MESSAGES = 10
MAX_MESSAGES = 100


def _service(request: web.Request) -> LegacySync:
    return LegacySync(request.app[SYNC], request.app[ROOMS].reads)


@routes.get(V3 + "/events")
async def events(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    room_id = request.query.get("room_id")
    return json_response(await _service(request).events(
        requester, query_token(request, "from"),
        query_int(request, "timeout", DEFAULT_TIMEOUT_MS, lo=0, hi=MAX_TIMEOUT_MS),
        valid_room_id(room_id) if room_id is not None else None,
    ))


@routes.get(V3 + "/events/{eventId}")
async def event(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    return json_response(await _service(request).event(requester, request.match_info["eventId"]))


@routes.get(V3 + "/initialSync")
async def initial_sync(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    return json_response(await _service(request).initial_sync(
        requester, query_int(request, "limit", DEFAULT_MESSAGES, lo=1, hi=MAX_MESSAGES),
        query_bool(request, "archived"),
    ))


@routes.get(V3 + "/rooms/{roomId}/initialSync")
async def room_initial_sync(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    return json_response(await _service(request).room_initial_sync(
        requester, path_room_id(request),
        query_int(request, "limit", DEFAULT_MESSAGES, lo=1, hi=MAX_MESSAGES),
    ))
