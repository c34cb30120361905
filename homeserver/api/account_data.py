"""Client-Server routes for global and per-room account data (spec "Client Config")."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.context import SYNC
from homeserver.api.filters import own_user_id
from homeserver.api.http import json_response, path_room_id, read_json_body
from homeserver.services.account_data import GLOBAL

routes = web.RouteTableDef()

PREFIX = "/_matrix/client/v3"
GLOBAL_PATH = PREFIX + "/user/{userId}/account_data/{type}"
ROOM_PATH = PREFIX + "/user/{userId}/rooms/{roomId}/account_data/{type}"


def _room_id(request: web.Request) -> str:
    """The room of a per-room path, or GLOBAL for the global one."""
    return path_room_id(request) if "roomId" in request.match_info else GLOBAL


@routes.get(GLOBAL_PATH)
@routes.get(ROOM_PATH)
async def get_account_data(request: web.Request) -> web.Response:
    user_id = await own_user_id(request)
    room_id = _room_id(request)
    service = request.app[SYNC].account_data
    return json_response(await service.get(user_id, room_id, request.match_info["type"]))


@routes.put(GLOBAL_PATH)
@routes.put(ROOM_PATH)
async def put_account_data(request: web.Request) -> web.Response:
    user_id = await own_user_id(request, write=True)
    room_id = _room_id(request)
    content = await read_json_body(request)
    service = request.app[SYNC].account_data
    await service.set_by_client(user_id, room_id, request.match_info["type"], content)
    return json_response({})
