"""`GET /_matrix/federation/v1/openid/userinfo`: whom an OpenID token of this server names.

Asked by third parties (not servers), so there is no X-Matrix authentication: the token is the
credential. An unknown or expired token is 401 M_UNKNOWN_TOKEN.
"""

from __future__ import annotations

from aiohttp import web

from federation.api.context import OPENID
from homeserver.api.http import json_response
from homeserver.errors import MatrixError, unknown_token

routes = web.RouteTableDef()


@routes.get("/_matrix/federation/v1/openid/userinfo")
async def userinfo(request: web.Request) -> web.Response:
    token = request.query.get("access_token")
    if token is None:
        raise MatrixError(401, "M_MISSING_TOKEN", "'access_token' is required")
    user_id = request.app[OPENID].user_of(token)
    if user_id is None:
        raise unknown_token("Unknown or expired OpenID token")
    return json_response({"sub": user_id})
