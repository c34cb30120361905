"""Client-Server routes for user profiles (spec "Profiles", v1.16): `displayname`,
`avatar_url`, `m.tz` and custom namespaced fields, read, set and deleted one at a time.

What each field may hold and the size limits are the profile service's; a change of
`displayname` or `avatar_url` reaches the user's member events in the background.
"""

from __future__ import annotations

import re

from aiohttp import web

from homeserver.api.auth import require_requester
from homeserver.api.context import ACCOUNTS
from homeserver.api.http import json_response, path_user_id, read_json_body
from homeserver.errors import MatrixError, invalid_param, not_found
from homeserver.services.profiles import check_key

routes = web.RouteTableDef()

PREFIX = "/_matrix/client/v3"
# The keyName grammar of the spec's profile API.
_KEY_NAME_RE = re.compile(r"avatar_url|displayname|m\.tz|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")



def _key_name(request: web.Request) -> str:
    key = request.match_info["keyName"]
    check_key(key)
    if _KEY_NAME_RE.fullmatch(key) is None:
        raise invalid_param(f"{key!r} is not a valid profile key")
    return key


@routes.get(PREFIX + "/profile/{userId}")
async def get_profile(request: web.Request) -> web.Response:
    return json_response(await request.app[ACCOUNTS].profiles.lookup_profile(path_user_id(request)))


@routes.get(PREFIX + "/profile/{userId}/{keyName}")
async def get_profile_field(request: web.Request) -> web.Response:
    user_id, key = path_user_id(request), _key_name(request)
    profile = await request.app[ACCOUNTS].profiles.lookup_profile(user_id)
    if key not in profile:
        raise not_found(f"This user has no {key!r} in their profile")
    return json_response({key: profile[key]})


@routes.put(PREFIX + "/profile/{userId}/{keyName}")
async def set_profile_field(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    user_id, key = path_user_id(request), _key_name(request)
    body = await read_json_body(request)
    if key not in body:
        raise MatrixError(400, "M_MISSING_PARAM", f"'{key}' is required")
    await request.app[ACCOUNTS].profiles.set_field(requester, user_id, key, body[key])
    return json_response({})


@routes.delete(PREFIX + "/profile/{userId}/{keyName}")
async def remove_profile_field(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    user_id, key = path_user_id(request), _key_name(request)
    await request.app[ACCOUNTS].profiles.remove_field(requester, user_id, key)
    return json_response({})
