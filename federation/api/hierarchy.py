"""`GET /_matrix/federation/v1/hierarchy/{roomId}` (server-server-api.md "Spaces"): a space
and its children as the asking server may see them; see homeserver/services/space_hierarchy.py.
"""

from __future__ import annotations

from aiohttp import web

from federation.api.auth import authenticated
from federation.api.context import SPACES
from federation.inbound_auth import AuthenticatedRequest
from homeserver.api.http import json_response, path_room_id, query_bool

routes = web.RouteTableDef()


@routes.get("/_matrix/federation/v1/hierarchy/{roomId}")
@authenticated
async def hierarchy(request: web.Request, auth: AuthenticatedRequest) -> web.Response:
    room_id = path_room_id(request)
    suggested_only = query_bool(request, "suggested_only")
    return json_response(
        await request.app[SPACES].federation_hierarchy(auth.origin, room_id, suggested_only)
    )
