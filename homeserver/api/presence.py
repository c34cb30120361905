"""Client-Server routes for presence: `GET/PUT /presence/{userId}/status`."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.auth import require_requester
from homeserver.api.context import SYNC
from homeserver.api.filters import own_user_id
from homeserver.api.http import field_str, json_response, path_user_id, read_json_body
from homeserver.errors import MatrixError, bad_json, invalid_param
from homeserver.services.presence import PRESENCE_STATES

routes = web.RouteTableDef()

PREFIX = "/_matrix/client/v3"
STATUS_PATH = PREFIX + "/presence/{userId}/status"
MAX_STATUS_MSG_CHARS = 1024


@routes.get(STATUS_PATH)
async def get_presence(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    user_id = path_user_id(request)
    return json_response(await request.app[SYNC].presence.get_presence(requester.user_id, user_id))


@routes.put(STATUS_PATH)
async def set_presence(request: web.Request) -> web.Response:
    user_id = await own_user_id(request)
    body = await read_json_body(request)
    if "presence" not in body:
        raise MatrixError(400, "M_MISSING_PARAM", "'presence' is required")
    state = field_str(body, "presence")
    if state is None or state not in PRESENCE_STATES:
        raise invalid_param("'presence' must be online, unavailable or offline")
    status_msg = field_str(body, "status_msg")
    if status_msg is not None and len(status_msg) > MAX_STATUS_MSG_CHARS:
        raise bad_json(f"'status_msg' is longer than {MAX_STATUS_MSG_CHARS} characters")
    await request.app[SYNC].presence.set_presence(user_id, state, status_msg)
    return json_response({})
