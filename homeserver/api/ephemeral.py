"""Client-Server routes for typing notifications, receipts and read markers."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from homeserver.api.auth import require_requester
from homeserver.api.context import SYNC
from homeserver.api.filters import own_user_id
from homeserver.api.http import (
    field_str,
    is_json_number,
    json_response,
    path_room_id,
    read_json_body,
)
from homeserver.errors import MatrixError, bad_json, invalid_param
from homeserver.protocol.identifiers import is_valid_event_id

routes = web.RouteTableDef()

PREFIX = "/_matrix/client/v3"
READ_MARKER_KEYS = ("m.fully_read", "m.read", "m.read.private")


def _event_id(value: str) -> str:
    if not is_valid_event_id(value):
        raise invalid_param(f"{value!r} is not a valid event ID")
    return value


def _typing_body(body: dict[str, Any]) -> tuple[bool, int | None]:
    if "typing" not in body:
        raise MatrixError(400, "M_MISSING_PARAM", "'typing' is required")
    typing = body["typing"]
    if not isinstance(typing, bool):
        raise bad_json("'typing' must be a boolean")
    timeout = body.get("timeout")
    if timeout is not None and (not is_json_number(timeout) or timeout < 0):
        raise bad_json("'timeout' must be a non-negative number of milliseconds")
    return typing, int(timeout) if timeout is not None else None


@routes.put(PREFIX + "/rooms/{roomId}/typing/{userId}")
async def set_typing(request: web.Request) -> web.Response:
    user_id = await own_user_id(request, write=True)
    room_id = path_room_id(request)
    typing, timeout = _typing_body(await read_json_body(request))
    await request.app[SYNC].typing.set_typing(user_id, room_id, typing, timeout)
    return json_response({})


@routes.post(PREFIX + "/rooms/{roomId}/receipt/{receiptType}/{eventId}")
async def send_receipt(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    room_id = path_room_id(request)
    event_id = _event_id(request.match_info["eventId"])
    body = await read_json_body(request, allow_empty=True)
    thread_id = field_str(body, "thread_id")
    markers = {request.match_info["receiptType"]: event_id}
    await request.app[SYNC].receipts.mark_read(requester.user_id, room_id, markers, thread_id)
    return json_response({})


@routes.post(PREFIX + "/rooms/{roomId}/read_markers")
async def set_read_markers(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    room_id = path_room_id(request)
    body = await read_json_body(request)
    markers: dict[str, str] = {}
    for key in READ_MARKER_KEYS:
        value = field_str(body, key)
        if value is not None:
            markers[key] = _event_id(value)
    await request.app[SYNC].receipts.mark_read(requester.user_id, room_id, markers)
    return json_response({})
