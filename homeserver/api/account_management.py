"""Client-Server routes for account management: `/account/password`, `/account/deactivate`
(both behind User-Interactive Authentication) and `/account/3pid`.

Moot keeps no third-party identifiers, so `/account/3pid` lists none; the 3PID binding
endpoints are not served (they answer 404 M_UNRECOGNIZED, which the spec allows a server
without 3PID support to do).
"""

from __future__ import annotations

from aiohttp import web

from homeserver.api.auth import access_token, require_requester
from homeserver.api.context import ACCOUNT_MANAGEMENT
from homeserver.api.http import field_bool, field_str, json_response, read_json_body
from homeserver.api.uia import uia_request
from homeserver.errors import MatrixError
from homeserver.services.requester import Requester

routes = web.RouteTableDef()

PREFIX = "/_matrix/client/v3"


async def optional_requester(request: web.Request) -> Requester | None:
    """The token's owner for endpoints that also serve callers without a token."""
    if access_token(request) is None:
        return None
    return await require_requester(request)


@routes.post(f"{PREFIX}/account/password")
async def change_password(request: web.Request) -> web.Response:
    requester = await optional_requester(request)
    body = await read_json_body(request)
    new_password = field_str(body, "new_password")
    if new_password is None:
        raise MatrixError(400, "M_MISSING_PARAM", "'new_password' is required")
    logout_devices = field_bool(body, "logout_devices", True)
    await request.app[ACCOUNT_MANAGEMENT].change_password(
        requester, new_password, logout_devices, uia_request(request, body)
    )
    return json_response({})


@routes.post(f"{PREFIX}/account/deactivate")
async def deactivate(request: web.Request) -> web.Response:
    requester = await optional_requester(request)
    body = await read_json_body(request)
    field_str(body, "id_server")  # checked for its type only: no 3PID is ever bound here
    erase = field_bool(body, "erase", False)
    await request.app[ACCOUNT_MANAGEMENT].deactivate(
        requester, uia_request(request, body), erase=erase
    )
    # The spec: "This must be `success` if the homeserver has no identifiers to unbind".
    return json_response({"id_server_unbind_result": "success"})


@routes.get(f"{PREFIX}/account/3pid")
async def threepids(request: web.Request) -> web.Response:
    await require_requester(request)
    return json_response({"threepids": []})
