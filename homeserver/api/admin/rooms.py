"""Rooms (Synapse's admin docs `rooms.md` and `room_membership.md`): list, details, members,
state, messages, block, make room admin and force-join. Deleting rooms is `room_deletes`."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.admin.auth import ADMIN, log_admin_action, require_admin
from homeserver.api.admin.paging import query_flag, query_page
from homeserver.api.context import ROOM_ADMIN
from homeserver.api.http import (
    field_bool,
    field_str,
    json_response,
    read_json_body,
    require_str,
    valid_room_id,
)
from homeserver.api.room_reads import read_messages
from homeserver.errors import bad_json

routes = web.RouteTableDef()

ROOMS = ADMIN + "/v1/rooms"

def _room_id(request: web.Request) -> str:
    return valid_room_id(request.match_info["room_id"])


@routes.get(ROOMS)
async def list_rooms(request: web.Request) -> web.Response:
    await require_admin(request)
    page = query_page(request)
    return json_response(await request.app[ROOM_ADMIN].list_rooms(
        search=request.query.get("search_term") or None,
        public=query_flag(request, "public_rooms"),
        empty=query_flag(request, "empty_rooms"),
        order_by=request.query.get("order_by", "name"), forwards=not page.backwards,
        offset=page.start, limit=page.limit,
    ))


@routes.get(ROOMS + "/{room_id}")
async def room_details(request: web.Request) -> web.Response:
    await require_admin(request)
    return json_response(await request.app[ROOM_ADMIN].room(_room_id(request)))


@routes.get(ROOMS + "/{room_id}/members")
async def room_members(request: web.Request) -> web.Response:
    await require_admin(request)
    return json_response(await request.app[ROOM_ADMIN].members(_room_id(request)))


@routes.get(ROOMS + "/{room_id}/state")
async def room_state(request: web.Request) -> web.Response:
    await require_admin(request)
    state = await request.app[ROOM_ADMIN].state(_room_id(request), request.query.get("type"))
    return json_response({"state": state})


@routes.get(ROOMS + "/{room_id}/messages")
async def room_messages(request: web.Request) -> web.Response:
    admin = await require_admin(request)
    _room_id(request)
    return json_response(await read_messages(request, admin, default_dir="f", as_admin=True))


@routes.get(ROOMS + "/{room_id}/block")
async def get_block(request: web.Request) -> web.Response:
    await require_admin(request)
    blocker = await request.app[ROOM_ADMIN].blocked_by(_room_id(request))
    if blocker is None:
        return json_response({"block": False})
    return json_response({"block": True, "user_id": blocker})


@routes.put(ROOMS + "/{room_id}/block")
async def put_block(request: web.Request) -> web.Response:
    admin = await require_admin(request)
    room_id = _room_id(request)
    body = await read_json_body(request)
    if "block" not in body:
        raise bad_json("'block' is required")
    block = field_bool(body, "block")
    await request.app[ROOM_ADMIN].set_blocked(admin, room_id, block)
    log_admin_action(admin, "block_room" if block else "unblock_room", room_id=room_id)
    return json_response({"block": block})


@routes.post(ROOMS + "/{room}/make_room_admin")
async def make_room_admin(request: web.Request) -> web.Response:
    admin = await require_admin(request)
    room = request.match_info["room"]
    body = await read_json_body(request, allow_empty=True)
    user_id = field_str(body, "user_id") or admin.user_id
    await request.app[ROOM_ADMIN].make_room_admin(room, user_id)
    log_admin_action(admin, "make_room_admin", room=room, user_id=user_id)
    return json_response({})


@routes.post(ADMIN + "/v1/join/{room}")
async def force_join(request: web.Request) -> web.Response:
    admin = await require_admin(request)
    room = request.match_info["room"]
    user_id = require_str(await read_json_body(request), "user_id")
    room_id = await request.app[ROOM_ADMIN].force_join(admin, room, user_id)
    log_admin_action(admin, "join_room", room_id=room_id, user_id=user_id)
    return json_response({"room_id": room_id})
