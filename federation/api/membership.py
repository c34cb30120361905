"""The membership handshakes with other servers: make_join/send_join v2, make_leave/send_leave
v2, make_knock/send_knock (answered as a resident server) and invite v2 (answered for our
invited users)."""

from __future__ import annotations

from aiohttp import web

from federation.api.auth import authenticated
from federation.api.context import JOINS
from federation.inbound_auth import AuthenticatedRequest
from homeserver.api.http import json_response

routes = web.RouteTableDef()

V1, V2 = "/_matrix/federation/v1", "/_matrix/federation/v2"


async def _make(request: web.Request, auth: AuthenticatedRequest, membership: str) -> web.Response:
    versions = request.query.getall("ver", [])
    answer = await request.app[JOINS].make(
        auth.origin, request.match_info["roomId"], request.match_info["userId"], membership,
        versions if membership != "leave" else None,
    )
    return json_response(answer)


async def _send(request: web.Request, auth: AuthenticatedRequest, membership: str) -> web.Response:
    answer = await request.app[JOINS].send(
        auth.origin, request.match_info["roomId"], request.match_info["eventId"], auth.content,
        membership,
    )
    return json_response(answer)


@routes.get(V1 + "/make_join/{roomId}/{userId}")
@authenticated
async def make_join(request: web.Request, auth: AuthenticatedRequest) -> web.Response:
    return await _make(request, auth, "join")


@routes.put(V2 + "/send_join/{roomId}/{eventId}")
@authenticated
async def send_join(request: web.Request, auth: AuthenticatedRequest) -> web.Response:
    return await _send(request, auth, "join")


@routes.get(V1 + "/make_leave/{roomId}/{userId}")
@authenticated
async def make_leave(request: web.Request, auth: AuthenticatedRequest) -> web.Response:
    return await _make(request, auth, "leave")


@routes.put(V2 + "/send_leave/{roomId}/{eventId}")
@authenticated
async def send_leave(request: web.Request, auth: AuthenticatedRequest) -> web.Response:
    return await _send(request, auth, "leave")


@routes.get(V1 + "/make_knock/{roomId}/{userId}")
@authenticated
async def make_knock(request: web.Request, auth: AuthenticatedRequest) -> web.Response:
    return await _make(request, auth, "knock")


@routes.put(V1 + "/send_knock/{roomId}/{eventId}")
@authenticated
async def send_knock(request: web.Request, auth: AuthenticatedRequest) -> web.Response:
    return await _send(request, auth, "knock")


@routes.put(V2 + "/invite/{roomId}/{eventId}")
@authenticated
async def invite(request: web.Request, auth: AuthenticatedRequest) -> web.Response:
    answer = await request.app[JOINS].on_invite(
        auth.origin, request.match_info["roomId"], request.match_info["eventId"], auth.content
    )
    return json_response(answer)
