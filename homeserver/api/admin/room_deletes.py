"""Deleting rooms (Synapse's admin docs `rooms.md`, "Delete Room API"): v2 in the background
with its status by delete ID or room, v1 answering when done. The work is
`services/room_shutdown.py`."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.admin.auth import ADMIN, log_admin_action, require_admin
from homeserver.api.context import ROOM_SHUTDOWN
from homeserver.api.http import field_bool, field_str, json_response, read_json_body, valid_room_id
from homeserver.services.room_shutdown import DEFAULT_MESSAGE, DEFAULT_ROOM_NAME, DeleteRequest

routes = web.RouteTableDef()


async def _delete_request(request: web.Request) -> tuple[str, DeleteRequest]:
    """The room and the body's options (the body must be a JSON object, `{}` at least)."""
    room_id = valid_room_id(request.match_info["room_id"])
    body = await read_json_body(request)
    return room_id, DeleteRequest(
        new_room_user_id=field_str(body, "new_room_user_id"),
        room_name=field_str(body, "room_name") or DEFAULT_ROOM_NAME,
        message=field_str(body, "message") or DEFAULT_MESSAGE,
        block=field_bool(body, "block", False),
        purge=field_bool(body, "purge", True),
        force_purge=field_bool(body, "force_purge", False),
    )


@routes.delete(ADMIN + "/v2/rooms/{room_id}")
async def delete_room(request: web.Request) -> web.Response:
    admin = await require_admin(request)
    room_id, options = await _delete_request(request)
    delete_id = await request.app[ROOM_SHUTDOWN].start(admin, room_id, options)
    log_admin_action(admin, "delete_room", room_id=room_id, delete_id=delete_id, **_logged(options))
    return json_response({"delete_id": delete_id})


@routes.delete(ADMIN + "/v1/rooms/{room_id}")
async def delete_room_now(request: web.Request) -> web.Response:
    admin = await require_admin(request)
    room_id, options = await _delete_request(request)
    log_admin_action(admin, "delete_room", room_id=room_id, **_logged(options))
    return json_response(await request.app[ROOM_SHUTDOWN].delete_now(admin, room_id, options))


def _logged(options: DeleteRequest) -> dict[str, object]:
    return {
        "new_room_user_id": options.new_room_user_id, "block": options.block,
        "purge": options.purge, "force_purge": options.force_purge,
    }


@routes.get(ADMIN + "/v2/rooms/{room_id}/delete_status")
async def delete_status_of_room(request: web.Request) -> web.Response:
    await require_admin(request)
    room_id = valid_room_id(request.match_info["room_id"])
    return json_response({"results": request.app[ROOM_SHUTDOWN].statuses(room_id)})


@routes.get(ADMIN + "/v2/rooms/delete_status/{delete_id}")
async def delete_status(request: web.Request) -> web.Response:
    await require_admin(request)
    return json_response(request.app[ROOM_SHUTDOWN].status(request.match_info["delete_id"]))
