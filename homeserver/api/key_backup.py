"""Client-Server routes for server-side key backups: `/room_keys/version` and `/room_keys/keys`.

The keys endpoints come in three levels (all rooms, one room, one session) that share one
handler per method: the path says which level, and the body and response nest accordingly.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from homeserver.api.auth import require_requester, require_writer
from homeserver.api.context import KEY_BACKUP
from homeserver.api.http import (
    field_obj,
    field_str,
    json_response,
    read_json_body,
    require_str,
    valid_room_id,
)
from homeserver.errors import MatrixError, bad_json, invalid_param, not_found
from homeserver.services.key_backup import RoomKey

routes = web.RouteTableDef()

PREFIX = "/_matrix/client/v3/room_keys"
KEYS_PATHS = (PREFIX + "/keys", PREFIX + "/keys/{roomId}", PREFIX + "/keys/{roomId}/{sessionId}")
MAX_INDEX = 2**31 - 1  # first_message_index and forwarded_count are PostgreSQL integers


def _require_obj(body: dict[str, Any], key: str) -> dict[str, Any]:
    value = field_obj(body, key)
    if value is None:
        raise bad_json(f"'{key}' is required")
    return value


def _count(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INDEX:
        raise bad_json(f"'{key}' must be a non-negative integer")
    return value


def _key(room_id: str, session_id: str, data: Any) -> RoomKey:
    """One KeyBackupData object, validated."""
    if not session_id:
        raise invalid_param("A session ID must not be empty")
    if not isinstance(data, dict):
        raise bad_json(f"The key data of session {session_id!r} must be an object")
    is_verified = data.get("is_verified")
    if not isinstance(is_verified, bool):
        raise bad_json("'is_verified' must be a boolean")
    return RoomKey(
        room_id, session_id, _count(data, "first_message_index"),
        _count(data, "forwarded_count"), is_verified, _require_obj(data, "session_data"),
    )


def _sessions(room_id: str, backup: Any) -> list[RoomKey]:
    """A RoomKeyBackup object (`{"sessions": {...}}`), validated."""
    if not isinstance(backup, dict):
        raise bad_json(f"The backup of room {room_id!r} must be an object")
    sessions = _require_obj(backup, "sessions")
    return [_key(room_id, session_id, data) for session_id, data in sessions.items()]


def _parse_keys(room_id: str | None, session_id: str | None, body: dict[str, Any]) -> list[RoomKey]:
    """The body of a PUT at the level the path names."""
    if room_id is None:
        rooms = _require_obj(body, "rooms")
        return [k for r, backup in rooms.items() for k in _sessions(valid_room_id(r), backup)]
    if session_id is None:
        return _sessions(room_id, body)
    return [_key(room_id, session_id, body)]


def _key_data(key: RoomKey) -> dict[str, Any]:
    return {
        "first_message_index": key.first_message_index, "forwarded_count": key.forwarded_count,
        "is_verified": key.is_verified, "session_data": key.session_data,
    }


def _version_param(request: web.Request) -> str:
    version = request.query.get("version")
    if version is None:
        raise MatrixError(400, "M_MISSING_PARAM", "The 'version' query parameter is required")
    return version


def _scope(request: web.Request) -> tuple[str | None, str | None]:
    """(room_id, session_id) of the path; None where the path covers everything."""
    room_id = request.match_info.get("roomId")
    session_id = request.match_info.get("sessionId")
    return (None if room_id is None else valid_room_id(room_id)), session_id


@routes.post(PREFIX + "/version")
async def create_version(request: web.Request) -> web.Response:
    requester = await require_writer(request)
    body = await read_json_body(request)
    version = await request.app[KEY_BACKUP].create_version(
        requester.user_id, require_str(body, "algorithm"), _require_obj(body, "auth_data")
    )
    return json_response({"version": version})


@routes.get(PREFIX + "/version")
@routes.get(PREFIX + "/version/{version}")
async def get_version(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    return json_response(await request.app[KEY_BACKUP].get_version(
        requester.user_id, request.match_info.get("version")
    ))


@routes.put(PREFIX + "/version/{version}")
async def update_version(request: web.Request) -> web.Response:
    requester = await require_writer(request)
    body = await read_json_body(request)
    await request.app[KEY_BACKUP].update_version(
        requester.user_id, request.match_info["version"], require_str(body, "algorithm"),
        _require_obj(body, "auth_data"), field_str(body, "version"),
    )
    return json_response({})


@routes.delete(PREFIX + "/version/{version}")
async def delete_version(request: web.Request) -> web.Response:
    requester = await require_writer(request)
    await request.app[KEY_BACKUP].delete_version(requester.user_id, request.match_info["version"])
    return json_response({})


async def put_keys(request: web.Request) -> web.Response:
    requester = await require_writer(request)
    version = _version_param(request)
    room_id, session_id = _scope(request)
    keys = _parse_keys(room_id, session_id, await read_json_body(request))
    return json_response(await request.app[KEY_BACKUP].put_keys(requester.user_id, version, keys))


async def get_keys(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    version = _version_param(request)
    room_id, session_id = _scope(request)
    keys = await request.app[KEY_BACKUP].get_keys(requester.user_id, version, room_id, session_id)
    if session_id is not None:
        if not keys:
            raise not_found("Key not found.")
        return json_response(_key_data(keys[0]))
    rooms: dict[str, dict[str, Any]] = {}
    for key in keys:
        rooms.setdefault(key.room_id, {"sessions": {}})["sessions"][key.session_id] = (
            _key_data(key)
        )
    if room_id is not None:
        return json_response(rooms.get(room_id, {"sessions": {}}))
    return json_response({"rooms": rooms})


async def delete_keys(request: web.Request) -> web.Response:
    requester = await require_writer(request)
    version = _version_param(request)
    room_id, session_id = _scope(request)
    return json_response(await request.app[KEY_BACKUP].delete_keys(
        requester.user_id, version, room_id, session_id
    ))


for _path in KEYS_PATHS:
    routes.put(_path)(put_keys)
    routes.get(_path)(get_keys)
    routes.delete(_path)(delete_keys)
