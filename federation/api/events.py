"""Reading events and room state over federation: `GET /event/{eventId}`, `/state/{roomId}`,
`/state_ids/{roomId}` (the state *before* `event_id`) and `/event_auth/{roomId}/{eventId}`
(server-server-api.md "Retrieving events", "Retrieving event authorisation information")."""

from __future__ import annotations

from aiohttp import web

from federation.api.auth import authenticated
from federation.api.context import ROOM_READS
from federation.inbound_auth import AuthenticatedRequest
from homeserver.api.http import json_response, path_room_id
from homeserver.errors import MatrixError

routes = web.RouteTableDef()
V1 = "/_matrix/federation/v1"


def _event_id_param(request: web.Request) -> str:
    event_id = request.query.get("event_id")
    if event_id is None:
        raise MatrixError(400, "M_MISSING_PARAM", "'event_id' is required")
    return event_id


@routes.get(V1 + "/event/{eventId}")
@authenticated
async def get_event(request: web.Request, auth: AuthenticatedRequest) -> web.Response:
    reads = request.app[ROOM_READS]
    pdu = await reads.event(auth.origin, request.match_info["eventId"])
    return json_response(reads.transaction([pdu]))


@routes.get(V1 + "/state/{roomId}")
@authenticated
async def get_state(request: web.Request, auth: AuthenticatedRequest) -> web.Response:
    room_id, event_id = path_room_id(request), _event_id_param(request)
    pdus, chain = await request.app[ROOM_READS].state(auth.origin, room_id, event_id)
    return json_response({"pdus": pdus, "auth_chain": chain})


@routes.get(V1 + "/state_ids/{roomId}")
@authenticated
async def get_state_ids(request: web.Request, auth: AuthenticatedRequest) -> web.Response:
    room_id, event_id = path_room_id(request), _event_id_param(request)
    pdu_ids, chain_ids = await request.app[ROOM_READS].state_ids(auth.origin, room_id, event_id)
    return json_response({"pdu_ids": pdu_ids, "auth_chain_ids": chain_ids})


@routes.get(V1 + "/event_auth/{roomId}/{eventId}")
@authenticated
async def get_event_auth(request: web.Request, auth: AuthenticatedRequest) -> web.Response:
    chain = await request.app[ROOM_READS].event_auth(
        auth.origin, path_room_id(request), request.match_info["eventId"]
    )
    return json_response({"auth_chain": chain})
