"""`POST /user/{userId}/openid/request_token` (see homeserver/services/openid.py)."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.auth import require_requester
from homeserver.api.context import ACCOUNTS, CONFIG
from homeserver.api.http import json_response, read_json_body
from homeserver.errors import forbidden

routes = web.RouteTableDef()


@routes.post("/_matrix/client/v3/user/{userId}/openid/request_token")
async def request_token(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    if request.match_info["userId"] != requester.user_id:
        raise forbidden("You may only request OpenID tokens for yourself")
    await read_json_body(request)
    token, expires_in = request.app[ACCOUNTS].openid.issue(requester.user_id)
    return json_response({
        "access_token": token, "token_type": "Bearer", "expires_in": expires_in,
        "matrix_server_name": request.app[CONFIG].server.server_name,
    })
