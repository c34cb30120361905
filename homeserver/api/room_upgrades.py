"""`POST /rooms/{roomId}/upgrade` (see homeserver/services/room_upgrades.py)."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.auth import require_requester
from homeserver.api.context import ROOMS
from homeserver.api.http import json_response, path_room_id, read_json_body
from homeserver.services.room_upgrades import RoomUpgrades, new_version_of

routes = web.RouteTableDef()


@routes.post("/_matrix/client/v3/rooms/{roomId}/upgrade")
async def upgrade(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    room_id = path_room_id(request)
    version = new_version_of(await read_json_body(request))
    rooms = request.app[ROOMS]
    upgrades = RoomUpgrades(rooms.db, rooms.engine, rooms.local, rooms.reads, rooms.creation)
    return json_response({"replacement_room": await upgrades.upgrade(requester, room_id, version)})
