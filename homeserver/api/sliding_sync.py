"""Client-Server route for Simplified Sliding Sync (MSC4186), at the unstable path the
reference server and Element X use: parse the query and body, call the service."""

from __future__ import annotations

from functools import lru_cache

from aiohttp import web

from homeserver.api.auth import require_requester
from homeserver.api.context import SLIDING_SYNC
from homeserver.api.http import json_response, parse_json_object, query_int, read_body
from homeserver.errors import bad_json, invalid_param
from homeserver.protocol.sliding_sync import SlidingSyncRequest, parse_request
from homeserver.services.presence import PRESENCE_STATES
from homeserver.services.sliding_sync import SlidingSyncQuery

routes = web.RouteTableDef()

PATH = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
MAX_TIMEOUT_MS = 2**31
# Clients send the same body with every long-poll (matrix-rust-sdk does): the parsed request
# of each recent small body is kept, so that a woken long-poll skips parsing and checking it.
PARSED_BODIES = 1024
MAX_PARSED_BODY_BYTES = 8192


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
    raw = await read_body(request)
    body = _parse_cached(raw) if len(raw) <= MAX_PARSED_BODY_BYTES else _parse(raw)
    return json_response(await request.app[SLIDING_SYNC].sync(requester, body, query))


def _parse(raw: bytes) -> SlidingSyncRequest:
    """The request (immutable, so one parse may serve every request with the same bytes), or
    the Matrix error of the first problem with it."""
    try:
        return parse_request(parse_json_object(raw))
    except ValueError as e:
        raise bad_json(str(e)) from None


_parse_cached = lru_cache(maxsize=PARSED_BODIES)(_parse)
