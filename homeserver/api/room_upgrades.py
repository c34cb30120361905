"""`POST /rooms/{roomId}/upgrade` (see homeserver/services/room_upgrades.py)."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.auth import require_requester
from homeserver.api.context import UPGRADES
from homeserver.api.http import json_response, path_room_id, read_json_body
from homeserver.services.room_upgrades import additional_creators_of, new_version_of

routes = web.RouteTableDef()


@routes.post("/_matrix/client/v3/rooms/{roomId}/upgrade")
async def upgrade(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    room_id = path_room_id(request)
    body = await read_json_body(request)
    version, creators = new_version_of(body), additional_creators_of(body)
    new_room = await request.app[UPGRADES].upgrade(requester, room_id, version, creators)
    return json_response({"replacement_room": new_room})
