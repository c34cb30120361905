"""Client-Server routes for room tags: `/user/{userId}/rooms/{roomId}/tags[/{tag}]`."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.context import TAGS
from homeserver.api.filters import own_user_id
from homeserver.api.http import is_json_number, json_response, path_room_id, read_json_body
from homeserver.errors import bad_json, invalid_param

routes = web.RouteTableDef()

PREFIX = "/_matrix/client/v3"
TAGS_PATH = PREFIX + "/user/{userId}/rooms/{roomId}/tags"
MAX_TAG_BYTES = 255


def _tag(request: web.Request) -> str:
    tag = request.match_info["tag"]
    if len(tag.encode()) > MAX_TAG_BYTES:
        raise invalid_param(f"A tag is at most {MAX_TAG_BYTES} bytes")
    return tag


@routes.get(TAGS_PATH)
async def get_tags(request: web.Request) -> web.Response:
    user_id = await own_user_id(request)
    room_id = path_room_id(request)
    return json_response({"tags": await request.app[TAGS].get_tags(user_id, room_id)})


@routes.put(TAGS_PATH + "/{tag}")
async def put_tag(request: web.Request) -> web.Response:
    user_id = await own_user_id(request, write=True)
    room_id = path_room_id(request)
    tag = _tag(request)
    content = await read_json_body(request)
    if "order" in content and not is_json_number(content["order"]):
        raise bad_json("'order' must be a number")
    await request.app[TAGS].set_tag(user_id, room_id, tag, content)
    return json_response({})


@routes.delete(TAGS_PATH + "/{tag}")
async def delete_tag(request: web.Request) -> web.Response:
    user_id = await own_user_id(request, write=True)
    room_id = path_room_id(request)
    await request.app[TAGS].delete_tag(user_id, room_id, _tag(request))
    return json_response({})
