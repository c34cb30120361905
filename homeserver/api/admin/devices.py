"""A user's devices and sessions, for server admins (Synapse's "User devices", "List room
memberships of a user" and "Query current sessions for a user"):

- `GET|POST /_synapse/admin/v2/users/{userId}/devices`, `GET|PUT|DELETE …/devices/{deviceId}`,
  `POST /_synapse/admin/v2/users/{userId}/delete_devices`: as the user's own device management,
  without User-Interactive Authentication (devices.py of the services does both);
- `GET /_synapse/admin/v1/users/{userId}/joined_rooms`;
- `GET /_synapse/admin/v1/whois/{userId}`: the spec's `/admin/whois` (api/devices.py) under
  Synapse's path."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.admin.auth import ADMIN, log_admin_action, require_admin
from homeserver.api.context import DEVICES, ROOMS
from homeserver.api.devices import device_ids
from homeserver.api.http import field_str, json_response, path_user_id, read_json_body, require_str

routes = web.RouteTableDef()

USER = ADMIN + "/v2/users/{userId}"


@routes.get(USER + "/devices")
async def list_devices(request: web.Request) -> web.Response:
    await require_admin(request)
    devices = await request.app[DEVICES].admin_list(request.match_info["userId"])
    return json_response({"devices": devices, "total": len(devices)})


@routes.post(USER + "/devices")
async def create_device(request: web.Request) -> web.Response:
    admin = await require_admin(request)
    user_id = request.match_info["userId"]
    device_id = require_str(await read_json_body(request), "device_id")
    await request.app[DEVICES].admin_create(user_id, device_id)
    log_admin_action(admin, "create_device", user_id=user_id, device_id=device_id)
    return json_response({})


@routes.get(USER + "/devices/{deviceId}")
async def get_device(request: web.Request) -> web.Response:
    await require_admin(request)
    return json_response(await request.app[DEVICES].admin_get(
        request.match_info["userId"], request.match_info["deviceId"]
    ))


@routes.put(USER + "/devices/{deviceId}")
async def update_device(request: web.Request) -> web.Response:
    admin = await require_admin(request)
    user_id, device_id = request.match_info["userId"], request.match_info["deviceId"]
    display_name = field_str(await read_json_body(request), "display_name")
    await request.app[DEVICES].admin_rename(user_id, device_id, display_name)
    log_admin_action(
        admin, "rename_device", user_id=user_id, device_id=device_id, display_name=display_name
    )
    return json_response({})


@routes.delete(USER + "/devices/{deviceId}")
async def delete_device(request: web.Request) -> web.Response:
    admin = await require_admin(request)
    user_id, device_id = request.match_info["userId"], request.match_info["deviceId"]
    await request.app[DEVICES].admin_delete(user_id, [device_id])
    log_admin_action(admin, "delete_devices", user_id=user_id, devices=[device_id])
    return json_response({})


@routes.post(USER + "/delete_devices")
async def delete_devices(request: web.Request) -> web.Response:
    admin = await require_admin(request)
    user_id = request.match_info["userId"]
    body = await read_json_body(request)
    devices = device_ids(body)
    await request.app[DEVICES].admin_delete(user_id, devices)
    log_admin_action(admin, "delete_devices", user_id=user_id, devices=devices)
    return json_response({})


@routes.get(ADMIN + "/v1/users/{userId}/joined_rooms")
async def joined_rooms(request: web.Request) -> web.Response:
    """Any user's, a remote one's too: the rooms this server shares with them."""
    await require_admin(request)
    user_id = path_user_id(request)
    rooms = await request.app[ROOMS].joined_rooms_of(user_id)
    return json_response({"joined_rooms": rooms, "total": len(rooms)})


@routes.get(ADMIN + "/v1/whois/{userId}")
async def whois(request: web.Request) -> web.Response:
    admin = await require_admin(request)
    return json_response(await request.app[DEVICES].whois(admin, request.match_info["userId"]))
