"""Client-Server routes for user profiles: `displayname` and `avatar_url`.

Only these two fields are stored. Other valid keys (`m.tz`, custom namespaced keys) read as
absent (404) and writing them is refused (403, which the spec allows for fields the server will
not modify). Changing a profile does not yet update the user's m.room.member events.
"""

from __future__ import annotations

import re

from aiohttp import web

from homeserver.api.auth import require_requester
from homeserver.api.context import ACCOUNTS
from homeserver.api.http import json_response, read_json_body
from homeserver.errors import MatrixError, bad_json, forbidden, invalid_param, not_found
from homeserver.protocol.identifiers import is_valid_user_id

routes = web.RouteTableDef()

PREFIX = "/_matrix/client/v3"
# The keyName grammar of the spec's profile API.
_KEY_NAME_RE = re.compile(r"avatar_url|displayname|m\.tz|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
_STORED_KEYS = ("displayname", "avatar_url")


def _user_id(request: web.Request) -> str:
    user_id = request.match_info["userId"]
    if not is_valid_user_id(user_id):
        raise invalid_param(f"{user_id!r} is not a valid user ID")
    return user_id


def _key_name(request: web.Request) -> str:
    key = request.match_info["keyName"]
    if _KEY_NAME_RE.fullmatch(key) is None:
        raise invalid_param(f"{key!r} is not a valid profile key")
    return key


@routes.get(PREFIX + "/profile/{userId}")
async def get_profile(request: web.Request) -> web.Response:
    return json_response(await request.app[ACCOUNTS].lookup_profile(_user_id(request)))


@routes.get(PREFIX + "/profile/{userId}/{keyName}")
async def get_profile_field(request: web.Request) -> web.Response:
    user_id, key = _user_id(request), _key_name(request)
    profile = await request.app[ACCOUNTS].lookup_profile(user_id)
    if key not in profile:
        raise not_found(f"This user has no {key!r} in their profile")
    return json_response({key: profile[key]})


@routes.put(PREFIX + "/profile/{userId}/{keyName}")
async def set_profile_field(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    user_id, key = _user_id(request), _key_name(request)
    if key not in _STORED_KEYS:
        raise forbidden(f"This homeserver does not store the profile field {key!r}")
    body = await read_json_body(request)
    if key not in body:
        raise MatrixError(400, "M_MISSING_PARAM", f"'{key}' is required")
    value = body[key]
    if not isinstance(value, str):
        raise bad_json(f"'{key}' must be a string")
    accounts = request.app[ACCOUNTS]
    if key == "displayname":
        await accounts.set_displayname(requester, user_id, value)
    else:
        await accounts.set_avatar_url(requester, user_id, value)
    return json_response({})


@routes.delete(PREFIX + "/profile/{userId}/{keyName}")
async def remove_profile_field(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    user_id, key = _user_id(request), _key_name(request)
    if key not in _STORED_KEYS:
        raise forbidden(f"This homeserver does not store the profile field {key!r}")
    await request.app[ACCOUNTS].remove_profile_field(requester, user_id, key)
    return json_response({})
