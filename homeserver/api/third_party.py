"""Client-Server routes for third-party networks (`/thirdparty/*`): the protocols the
application services bridge, and lookups of their locations and users. The services answer;
homeserver/services/third_party.py asks them."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.auth import require_requester
from homeserver.api.context import THIRD_PARTY
from homeserver.api.http import json_response
from homeserver.errors import MatrixError, invalid_param
from homeserver.protocol.identifiers import is_valid_room_alias, is_valid_user_id
from homeserver.protocol.third_party_networks import ENTITY_ID_FIELD, EntityKind

routes = web.RouteTableDef()

V3 = "/_matrix/client/v3"
# Matrix IDs a reverse lookup takes, each with its check.
_VALID_ID = {"location": is_valid_room_alias, "user": is_valid_user_id}


@routes.get(V3 + "/thirdparty/protocols")
async def protocols(request: web.Request) -> web.Response:
    await require_requester(request)
    return json_response(await request.app[THIRD_PARTY].protocols())


@routes.get(V3 + "/thirdparty/protocol/{protocol}")
async def protocol(request: web.Request) -> web.Response:
    await require_requester(request)
    return json_response(await request.app[THIRD_PARTY].protocol(request.match_info["protocol"]))


def _kind(request: web.Request) -> EntityKind:
    return "location" if request.match_info["kind"] == "location" else "user"


@routes.get(V3 + "/thirdparty/{kind:location|user}/{protocol}")
async def find(request: web.Request) -> web.Response:
    """The client's query string is the protocol's fields, passed on to the services as is."""
    await require_requester(request)
    fields = {k: v for k, v in request.query.items() if k != "access_token"}
    found = await request.app[THIRD_PARTY].find(
        _kind(request), request.match_info["protocol"], fields
    )
    return json_response(found)


@routes.get(V3 + "/thirdparty/{kind:location|user}")
async def find_by_matrix_id(request: web.Request) -> web.Response:
    await require_requester(request)
    kind = _kind(request)
    name = ENTITY_ID_FIELD[kind]
    matrix_id = request.query.get(name)
    if matrix_id is None:
        raise MatrixError(400, "M_MISSING_PARAM", f"'{name}' is required")
    if not _VALID_ID[kind](matrix_id):
        raise invalid_param(f"'{name}' is not a valid Matrix ID: {matrix_id!r}")
    return json_response(await request.app[THIRD_PARTY].find_by_matrix_id(kind, matrix_id))
