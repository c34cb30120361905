"""Reporting content (spec "Reporting content"): an event, a room or a user, to the server's
administrators. The rules of who may report what, and what the answer reveals, are the
reports service's (services/reports.py)."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.auth import require_requester
from homeserver.api.context import REPORTS
from homeserver.api.http import (
    field_str,
    is_json_number,
    json_response,
    path_room_id,
    path_user_id,
    read_json_body,
)
from homeserver.errors import MatrixError, bad_json, invalid_param

routes = web.RouteTableDef()

V3 = "/_matrix/client/v3"
MAX_REASON_CHARS = 1000


async def _reason(request: web.Request, *, required: bool) -> str:
    """The body's `reason`: required (possibly blank) for room and user reports, optional
    for an event's. `score` (removed in v1.18) is still checked for its v1.17 type."""
    body = await read_json_body(request, allow_empty=not required)
    reason = field_str(body, "reason")
    if reason is None and required:
        raise MatrixError(400, "M_MISSING_PARAM", "'reason' is required")
    if reason is not None and len(reason) > MAX_REASON_CHARS:
        raise invalid_param(f"'reason' is at most {MAX_REASON_CHARS} characters")
    score = body.get("score")
    if score is not None and not is_json_number(score):
        raise bad_json("'score' must be a number")
    return reason or ""


@routes.post(V3 + "/rooms/{roomId}/report/{eventId}")
async def report_event(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    room_id, event_id = path_room_id(request), request.match_info["eventId"]
    reason = await _reason(request, required=False)
    await request.app[REPORTS].report_event(requester, room_id, event_id, reason)
    return json_response({})


@routes.post(V3 + "/rooms/{roomId}/report")
async def report_room(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    room_id = path_room_id(request)
    reason = await _reason(request, required=True)
    await request.app[REPORTS].report_room(requester, room_id, reason)
    return json_response({})


@routes.post(V3 + "/users/{userId}/report")
async def report_user(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    user_id = path_user_id(request)
    reason = await _reason(request, required=True)
    await request.app[REPORTS].report_user(requester, user_id, reason)
    return json_response({})
