"""Room creation, the room directory's aliases, and the lists of joined and mutual rooms."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.auth import require_requester, require_writer
from homeserver.api.context import ROOMS
from homeserver.api.http import json_response, read_json_body, require_str
from homeserver.errors import MatrixError, invalid_param
from homeserver.protocol.identifiers import is_valid_user_id

routes = web.RouteTableDef()

V3 = "/_matrix/client/v3"


@routes.post(V3 + "/createRoom")
async def create_room(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    body = await read_json_body(request)
    room_id = await request.app[ROOMS].create_room(requester, body)
    return json_response({"room_id": room_id})


@routes.get(V3 + "/joined_rooms")
async def joined_rooms(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    return json_response({"joined_rooms": await request.app[ROOMS].joined_rooms(requester)})


@routes.get("/_matrix/client/v1/mutual_rooms")
async def mutual_rooms(request: web.Request) -> web.Response:
    """The rooms both the requester and `user_id` are joined to (v1.19), in one batch: no
    `next_batch` is ever handed out, so any `from` is invalid."""
    requester = await require_requester(request)
    user_id = request.query.get("user_id")
    if user_id is None:
        raise MatrixError(400, "M_MISSING_PARAM", "'user_id' is required")
    if "from" in request.query:
        raise invalid_param("Unknown 'from' token")
    if not is_valid_user_id(user_id) or user_id == requester.user_id:
        raise invalid_param("'user_id' must be another user's valid user ID")
    joined = await request.app[ROOMS].mutual_rooms(requester, user_id)
    return json_response({"joined": joined, "count": len(joined)})


@routes.put(V3 + "/directory/room/{alias}")
async def put_alias(request: web.Request) -> web.Response:
    requester = await require_writer(request)
    body = await read_json_body(request)
    await request.app[ROOMS].put_alias(
        requester, request.match_info["alias"], require_str(body, "room_id")
    )
    return json_response({})


@routes.get(V3 + "/directory/room/{alias}")
async def get_alias(request: web.Request) -> web.Response:
    return json_response(await request.app[ROOMS].get_alias(request.match_info["alias"]))


@routes.delete(V3 + "/directory/room/{alias}")
async def delete_alias(request: web.Request) -> web.Response:
    requester = await require_writer(request)
    await request.app[ROOMS].delete_alias(requester, request.match_info["alias"])
    return json_response({})


@routes.get(V3 + "/rooms/{room_id}/aliases")
async def room_aliases(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    aliases = await request.app[ROOMS].room_aliases(requester, request.match_info["room_id"])
    return json_response({"aliases": aliases})
