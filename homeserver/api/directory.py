"""Client-Server routes for room discovery and the user directory.

`/publicRooms` (GET of this server's directory is open to anyone, as in the spec; POST, and
GET of another server's directory (`?server=`, asked over federation), need an access token,
as in Synapse: a stranger does not make this server contact other servers),
`/directory/list/room/{roomId}`, an application service's
`/directory/list/appservice/{networkId}/{roomId}` and `/user_directory/search`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from homeserver.api.appservice_auth import require_appservice
from homeserver.api.auth import require_requester
from homeserver.api.context import CONFIG, DIRECTORY
from homeserver.api.http import (
    field_bool,
    field_obj,
    field_str,
    json_response,
    path_room_id,
    query_bool,
    query_int,
    read_json_body,
)
from homeserver.errors import MatrixError, bad_json, invalid_param
from homeserver.protocol.identifiers import is_valid_server_name
from homeserver.protocol.public_rooms import PublicRoomsQuery
from homeserver.services.requester import Requester

routes = web.RouteTableDef()

PREFIX = "/_matrix/client/v3"
DEFAULT_ROOMS_LIMIT = 100
MAX_ROOMS_LIMIT = 500
DEFAULT_USERS_LIMIT = 10
MAX_USERS_LIMIT = 100
VISIBILITIES = ("public", "private")
MAX_NETWORK_ID_LENGTH = 255


def _body_int(body: dict[str, Any], key: str, default: int, hi: int) -> int:
    """An integer body field clamped to [1, hi]; any other type is M_BAD_JSON."""
    value = body.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad_json(f"'{key}' must be an integer")
    return max(1, min(hi, value))


def _server(request: web.Request) -> str | None:
    """The `server` whose directory is asked for: None for this server's own (also when the
    parameter is empty, as Synapse reads it)."""
    server = request.query.get("server")
    if not server or server == request.app[CONFIG].server.server_name:
        return None
    if not is_valid_server_name(server):
        raise invalid_param(f"'server' is not a valid server name: {server!r}")
    return server


async def _public_rooms(
    request: web.Request, query: PublicRoomsQuery, requester: Requester | None = None
) -> web.Response:
    """This server's directory, or the one `?server=` names (the requester's, who must have
    signed in)."""
    directory = request.app[DIRECTORY]
    server = _server(request)
    if server is None:
        return json_response(await directory.public_rooms(query))
    requester = requester or await require_requester(request)
    return json_response(await directory.server_public_rooms(requester, server, query))


def _room_types(raw: Any) -> tuple[str | None, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(t is None or isinstance(t, str) for t in raw):
        raise bad_json("'filter.room_types' must be a list of strings and nulls")
    return tuple(raw)


def public_rooms_params(request: web.Request, limit: int) -> PublicRoomsQuery:
    """The query string of `GET /publicRooms`, here and over federation: Synapse takes the
    networks (`include_all_networks`, `third_party_instance_id`) there too."""
    return PublicRoomsQuery(
        limit=limit,
        since=request.query.get("since"),
        third_party_instance_id=request.query.get("third_party_instance_id"),
        include_all_networks=query_bool(request, "include_all_networks"),
    )


@routes.get(PREFIX + "/publicRooms")
async def get_public_rooms(request: web.Request) -> web.Response:
    limit = query_int(request, "limit", DEFAULT_ROOMS_LIMIT, lo=1, hi=MAX_ROOMS_LIMIT)
    return await _public_rooms(request, public_rooms_params(request, limit))


def public_rooms_query(body: dict[str, Any]) -> PublicRoomsQuery:
    """The body of `POST /publicRooms`, which the federation API takes in the same shape."""
    flt = field_obj(body, "filter") or {}
    return PublicRoomsQuery(
        limit=_body_int(body, "limit", DEFAULT_ROOMS_LIMIT, MAX_ROOMS_LIMIT),
        since=field_str(body, "since"),
        search_term=field_str(flt, "generic_search_term"),
        room_types=_room_types(flt.get("room_types")),
        third_party_instance_id=field_str(body, "third_party_instance_id"),
        include_all_networks=field_bool(body, "include_all_networks"),
    )


@routes.post(PREFIX + "/publicRooms")
async def query_public_rooms(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    query = public_rooms_query(await read_json_body(request))
    return await _public_rooms(request, query, requester)


@routes.get(PREFIX + "/directory/list/room/{roomId}")
async def get_visibility(request: web.Request) -> web.Response:
    room_id = path_room_id(request)
    return json_response({"visibility": await request.app[DIRECTORY].visibility(room_id)})


@routes.put(PREFIX + "/directory/list/room/{roomId}")
async def set_visibility(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    room_id = path_room_id(request)
    visibility = _visibility(await read_json_body(request), "public")
    await request.app[DIRECTORY].set_visibility(requester, room_id, visibility)
    return json_response({})


def _visibility(body: dict[str, Any], default: str | None) -> str:
    visibility = field_str(body, "visibility", default)
    if visibility is None:
        raise MatrixError(400, "M_MISSING_PARAM", "'visibility' is required")
    if visibility not in VISIBILITIES:
        raise invalid_param("'visibility' must be public or private")
    return visibility


@routes.put(PREFIX + "/directory/list/appservice/{networkId}/{roomId}")
async def set_network_visibility(request: web.Request) -> web.Response:
    """An application service (by its as_token) lists a room in one of its networks'
    directories (`public`) or takes it out (`private`)."""
    service = await require_appservice(request)
    room_id = path_room_id(request)
    network_id = request.match_info["networkId"]
    if len(network_id) > MAX_NETWORK_ID_LENGTH:
        raise invalid_param(f"'networkId' is longer than {MAX_NETWORK_ID_LENGTH} characters")
    visibility = _visibility(await read_json_body(request), None)
    await request.app[DIRECTORY].set_network_visibility(
        service.id, network_id, room_id, visibility
    )
    return json_response({})


@routes.post(PREFIX + "/user_directory/search")
async def search_users(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    body = await read_json_body(request)
    if "search_term" not in body:
        raise MatrixError(400, "M_MISSING_PARAM", "'search_term' is required")
    term = field_str(body, "search_term") or ""
    limit = _body_int(body, "limit", DEFAULT_USERS_LIMIT, MAX_USERS_LIMIT)
    return json_response(await request.app[DIRECTORY].search_users(requester, term, limit))
