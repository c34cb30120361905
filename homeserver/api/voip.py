"""`GET /voip/turnServer` (client-server-api "Voice over IP"; see homeserver/services/voip.py)."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.auth import require_requester
from homeserver.api.context import TURN
from homeserver.api.http import json_response

routes = web.RouteTableDef()


@routes.get("/_matrix/client/v3/voip/turnServer")
async def turn_server(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    return json_response(request.app[TURN].for_user(requester.user_id))
