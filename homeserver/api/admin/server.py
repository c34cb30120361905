"""The server itself: `GET /_synapse/admin/v1/server_version` (synadm's first call)."""

from __future__ import annotations

from importlib.metadata import version

from aiohttp import web

from homeserver.api.admin.auth import ADMIN, require_admin
from homeserver.api.http import json_response

routes = web.RouteTableDef()


@routes.get(ADMIN + "/v1/server_version")
async def server_version(request: web.Request) -> web.Response:
    await require_admin(request)
    return json_response({"server_version": version("moot")})
