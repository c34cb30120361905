"""Device Management over federation: `GET /_matrix/federation/v1/user/devices/{userId}`, the
full device list of a local user that a peer fetches before it trusts `m.device_list_update`
EDUs (server-server-api.md "Device Management")."""

from __future__ import annotations

from aiohttp import web

from federation.api.auth import authenticated
from federation.api.context import E2E_KEYS
from federation.inbound_auth import AuthenticatedRequest
from homeserver.api.http import json_response
from homeserver.errors import invalid_param
from homeserver.protocol.identifiers import parse_user_id

routes = web.RouteTableDef()


@routes.get("/_matrix/federation/v1/user/devices/{userId}")
@authenticated
async def user_devices(request: web.Request, auth: AuthenticatedRequest) -> web.Response:
    """A user of another server is a bad request (the spec: "Must be a user local to the
    receiving homeserver"); a local user without devices has an empty list."""
    e2e_keys = request.app[E2E_KEYS]
    user_id = request.match_info["userId"]
    try:
        _, server = parse_user_id(user_id)
    except ValueError:
        raise invalid_param(f"{user_id!r} is not a user ID") from None
    if server != e2e_keys.server_name:
        raise invalid_param(f"{user_id} is not a user of this server")
    return json_response(await e2e_keys.user_devices(user_id))
