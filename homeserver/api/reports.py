"""Reporting content (spec "Reporting content"): an event, a room or a user, to the server's
administrators.

Moot has no admin API to queue reports in, so a report is a WARNING line of the
`homeserver.reports` logger, where the administrator reads the server's log: who reported what
and why (the reason escaped onto one line). What a reporter may report is what they may read:
an event or a room they can't see answers 404 as for one that doesn't exist.
"""

from __future__ import annotations

import logging

from aiohttp import web

from homeserver.api.auth import require_requester
from homeserver.api.context import ACCOUNTS, CONFIG, ROOMS
from homeserver.api.http import (
    field_str,
    is_json_number,
    json_response,
    one_line,
    path_room_id,
    read_json_body,
)
from homeserver.errors import MatrixError, bad_json, invalid_param, not_found
from homeserver.protocol.identifiers import is_valid_user_id

routes = web.RouteTableDef()
log = logging.getLogger("homeserver.reports")

V3 = "/_matrix/client/v3"
MAX_REASON_CHARS = 1000


async def _reason(request: web.Request) -> str:
    body = await read_json_body(request, allow_empty=True)
    reason = field_str(body, "reason") or ""
    if len(reason) > MAX_REASON_CHARS:
        raise invalid_param(f"'reason' is at most {MAX_REASON_CHARS} characters")
    score = body.get("score")
    if score is not None and not is_json_number(score):
        raise bad_json("'score' must be a number")
    return one_line(reason)


@routes.post(V3 + "/rooms/{roomId}/report/{eventId}")
async def report_event(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    room_id, event_id = path_room_id(request), request.match_info["eventId"]
    reason = await _reason(request)
    await request.app[ROOMS].reads.event(requester, room_id, event_id)  # 404 if not theirs to see
    log.warning("report by %s of event %s in %s: %s", requester.user_id, one_line(event_id),
                room_id, reason)
    return json_response({})


@routes.post(V3 + "/rooms/{roomId}/report")
async def report_room(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    room_id = path_room_id(request)
    reason = await _reason(request)
    try:
        await request.app[ROOMS].reads.state(requester, room_id)
    except MatrixError as e:
        if e.errcode != "M_FORBIDDEN":
            raise
        raise not_found("Room not found") from None
    log.warning("report by %s of room %s: %s", requester.user_id, room_id, reason)
    return json_response({})


@routes.post(V3 + "/users/{userId}/report")
async def report_user(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    user_id = request.match_info["userId"]
    if not is_valid_user_id(user_id):
        raise invalid_param(f"{user_id!r} is not a valid user ID")
    reason = await _reason(request)
    accounts = request.app[ACCOUNTS]
    if user_id.endswith(":" + request.app[CONFIG].server.server_name):
        await accounts.profiles.get_profile(user_id)  # 404 for a user who doesn't exist
    log.warning("report by %s of user %s: %s", requester.user_id, user_id, reason)
    return json_response({})
