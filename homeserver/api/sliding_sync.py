"""Client-Server route for Simplified Sliding Sync (MSC4186), at the unstable path the
reference server and Element X use: parse the query and body, call the service."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.auth import require_requester
from homeserver.api.context import SLIDING_SYNC
from homeserver.api.http import json_response, query_int, read_json_body
from homeserver.errors import bad_json, invalid_param
from homeserver.protocol.sliding_sync import parse_request
from homeserver.services.presence import PRESENCE_STATES
from homeserver.services.sliding_sync import SlidingSyncQuery

routes = web.RouteTableDef()

PATH = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
MAX_TIMEOUT_MS = 2**31


@routes.post(PATH)
async def sliding_sync(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    presence = request.query.get("set_presence")
    if presence is not None and presence not in PRESENCE_STATES:
        raise invalid_param("'set_presence' must be offline, online or unavailable")
    if request.query.get("timeout", "0").strip().startswith("-"):
        raise invalid_param("'timeout' must be a non-negative number of milliseconds")
    query = SlidingSyncQuery(
        pos=request.query.get("pos"),
        timeout_ms=query_int(request, "timeout", 0, lo=0, hi=MAX_TIMEOUT_MS),
        set_presence=presence,
    )
    try:
        body = parse_request(await read_json_body(request))
    except ValueError as e:
        raise bad_json(str(e)) from None
    return json_response(await request.app[SLIDING_SYNC].sync(requester, body, query))
