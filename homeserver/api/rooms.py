"""Room creation, the room directory's aliases, and the list of joined rooms."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.auth import require_requester, require_writer
from homeserver.api.context import ROOMS
from homeserver.api.http import json_response, read_json_body, require_str

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
