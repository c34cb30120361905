"""Client-Server routes for device management: `/devices`, `/devices/{deviceId}` and
`/delete_devices` (the deletions behind User-Interactive Authentication)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from homeserver.api.auth import require_requester
from homeserver.api.context import DEVICES
from homeserver.api.http import field_str, json_response, read_json_body
from homeserver.api.uia import uia_request
from homeserver.errors import MatrixError, bad_json

routes = web.RouteTableDef()

PREFIX = "/_matrix/client/v3"


@routes.get(f"{PREFIX}/devices")
async def list_devices(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    return json_response({"devices": await request.app[DEVICES].list_devices(requester)})


@routes.get(PREFIX + "/admin/whois/{userId}")
async def whois(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    return json_response(
        await request.app[DEVICES].whois(requester, request.match_info["userId"])
    )


@routes.get(PREFIX + "/devices/{deviceId}")
async def get_device(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    device_id = request.match_info["deviceId"]
    return json_response(await request.app[DEVICES].get_device(requester, device_id))


@routes.put(PREFIX + "/devices/{deviceId}")
async def update_device(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    body = await read_json_body(request)
    await request.app[DEVICES].rename_device(
        requester, request.match_info["deviceId"], field_str(body, "display_name")
    )
    return json_response({})


@routes.delete(PREFIX + "/devices/{deviceId}")
async def delete_device(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    # The spec marks the body required, but the first UIA round of many clients sends none.
    body = await read_json_body(request, allow_empty=True)
    device_id = request.match_info["deviceId"]
    await request.app[DEVICES].delete_devices(
        requester, [device_id], uia_request(request, body)
    )
    return json_response({})


def device_ids(body: dict[str, Any]) -> list[str]:
    """The `devices` of a bulk deletion's body: a required array of device IDs."""
    if "devices" not in body:
        raise MatrixError(400, "M_MISSING_PARAM", "'devices' is required")
    devices = body["devices"]
    if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
        raise bad_json("'devices' must be an array of device IDs")
    return devices


@routes.post(f"{PREFIX}/delete_devices")
async def delete_devices(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    body = await read_json_body(request)
    devices = device_ids(body)
    await request.app[DEVICES].delete_devices(requester, devices, uia_request(request, body))
    return json_response({})
