"""Client-Server routes for uploading and reading sync filters (`/user/{userId}/filter`)."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.auth import require_requester, require_writer
from homeserver.api.context import SYNC
from homeserver.api.http import json_response, read_json_body
from homeserver.errors import forbidden

routes = web.RouteTableDef()

PREFIX = "/_matrix/client/v3"


async def own_user_id(request: web.Request, *, write: bool = False) -> str:
    """The `userId` of the path, which must be the requester's own (403 otherwise); `write`:
    the request stores data, limited per user (see `require_writer`)."""
    requester = await (require_writer if write else require_requester)(request)
    if request.match_info["userId"] != requester.user_id:
        raise forbidden("You can only access your own data")
    return requester.user_id


@routes.post(PREFIX + "/user/{userId}/filter")
async def create_filter(request: web.Request) -> web.Response:
    user_id = await own_user_id(request, write=True)
    body = await read_json_body(request)
    filter_id = await request.app[SYNC].filters.create(user_id, body)
    return json_response({"filter_id": filter_id})


@routes.get(PREFIX + "/user/{userId}/filter/{filterId}")
async def get_filter(request: web.Request) -> web.Response:
    user_id = await own_user_id(request)
    filters = request.app[SYNC].filters
    return json_response(await filters.get_raw(user_id, request.match_info["filterId"]))
