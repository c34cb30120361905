"""The membership handshakes with other servers: make_join/send_join, make_leave/send_leave,
make_knock/send_knock (answered as a resident server) and invite (answered for our invited
users).

send_join, send_leave and invite also answer at their deprecated v1 paths, which older servers
and test suites still call: the same work, with the answer in v1's array form `[200, {...}]`
(joins-v1.yaml, leaving-v1.yaml, invites-v1.yaml)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from federation.api.auth import authenticated
from federation.api.context import JOINS
from federation.inbound_auth import AuthenticatedRequest
from homeserver.api.http import json_response

routes = web.RouteTableDef()

V1, V2 = "/_matrix/federation/v1", "/_matrix/federation/v2"


async def _make(request: web.Request, auth: AuthenticatedRequest, membership: str) -> web.Response:
    # make_join: "Defaults to [1]" when the server names none; make_knock requires it.
    versions = request.query.getall("ver", ["1"] if membership == "join" else [])
    answer = await request.app[JOINS].make(
        auth.origin, request.match_info["roomId"], request.match_info["userId"], membership,
        versions if membership != "leave" else None,
    )
    return json_response(answer)


async def _send(request: web.Request, auth: AuthenticatedRequest, membership: str) -> Any:
    return await request.app[JOINS].send(
        auth.origin, request.match_info["roomId"], request.match_info["eventId"], auth.content,
        membership,
    )


def _v1(answer: Any) -> web.Response:
    """The v1 API's answer: the status repeated in an array with the body."""
    return json_response([200, answer])


@routes.get(V1 + "/make_join/{roomId}/{userId}")
@authenticated
async def make_join(request: web.Request, auth: AuthenticatedRequest) -> web.Response:
    return await _make(request, auth, "join")


@routes.put(V2 + "/send_join/{roomId}/{eventId}")
@authenticated
async def send_join(request: web.Request, auth: AuthenticatedRequest) -> web.Response:
    return json_response(await _send(request, auth, "join"))


@routes.put(V1 + "/send_join/{roomId}/{eventId}")
@authenticated
async def send_join_v1(request: web.Request, auth: AuthenticatedRequest) -> web.Response:
    return _v1(await _send(request, auth, "join"))


@routes.get(V1 + "/make_leave/{roomId}/{userId}")
@authenticated
async def make_leave(request: web.Request, auth: AuthenticatedRequest) -> web.Response:
    return await _make(request, auth, "leave")


@routes.put(V2 + "/send_leave/{roomId}/{eventId}")
@authenticated
async def send_leave(request: web.Request, auth: AuthenticatedRequest) -> web.Response:
    return json_response(await _send(request, auth, "leave"))


@routes.put(V1 + "/send_leave/{roomId}/{eventId}")
@authenticated
async def send_leave_v1(request: web.Request, auth: AuthenticatedRequest) -> web.Response:
    return _v1(await _send(request, auth, "leave"))


@routes.get(V1 + "/make_knock/{roomId}/{userId}")
@authenticated
async def make_knock(request: web.Request, auth: AuthenticatedRequest) -> web.Response:
    return await _make(request, auth, "knock")


@routes.put(V1 + "/send_knock/{roomId}/{eventId}")
@authenticated
async def send_knock(request: web.Request, auth: AuthenticatedRequest) -> web.Response:
    return json_response(await _send(request, auth, "knock"))


@routes.put(V2 + "/invite/{roomId}/{eventId}")
@authenticated
async def invite(request: web.Request, auth: AuthenticatedRequest) -> web.Response:
    answer = await request.app[JOINS].on_invite(
        auth.origin, request.match_info["roomId"], request.match_info["eventId"], auth.content
    )
    return json_response(answer)


@routes.put(V1 + "/invite/{roomId}/{eventId}")
@authenticated
async def invite_v1(request: web.Request, auth: AuthenticatedRequest) -> web.Response:
    answer = await request.app[JOINS].on_invite_v1(
        auth.origin, request.match_info["roomId"], request.match_info["eventId"], auth.content
    )
    return _v1(answer)
