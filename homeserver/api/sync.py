"""Client-Server route for `GET /sync`: parse the query, call the sync service."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.auth import require_requester
from homeserver.api.context import SYNC
from homeserver.api.http import json_response, query_bool, query_int, query_token
from homeserver.errors import invalid_param
from homeserver.services.presence import PRESENCE_STATES
from homeserver.services.sync import SyncRequest

routes = web.RouteTableDef()

PREFIX = "/_matrix/client/v3"
MAX_TIMEOUT_MS = 2**31


@routes.get(PREFIX + "/sync")
async def sync(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    presence = request.query.get("set_presence")
    if presence is not None and presence not in PRESENCE_STATES:
        raise invalid_param("'set_presence' must be offline, online or unavailable")
    sync_request = SyncRequest(
        since=query_token(request, "since"),
        timeout_ms=query_int(request, "timeout", 0, lo=0, hi=MAX_TIMEOUT_MS),
        full_state=query_bool(request, "full_state"),
        filter=request.query.get("filter"),
        set_presence=presence,
        use_state_after=query_bool(request, "use_state_after"),
    )
    return json_response(await request.app[SYNC].sync(requester, sync_request))
