"""Reading rooms: state, members, single events, /context and /messages."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from homeserver.api.auth import require_requester
from homeserver.api.context import ROOMS
from homeserver.api.http import json_response, query_int
from homeserver.errors import MatrixError
from homeserver.services.requester import Requester
from homeserver.services.room_reads import parse_event_filter

routes = web.RouteTableDef()

V3 = "/_matrix/client/v3"


@routes.get(V3 + "/rooms/{room_id}/state")
async def get_state(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    reads = request.app[ROOMS].reads
    return json_response(await reads.state(requester, request.match_info["room_id"]))


async def _state_event(request: web.Request, state_key: str) -> web.Response:
    requester = await require_requester(request)
    m = request.match_info
    event = await request.app[ROOMS].reads.state_event(
        requester, m["room_id"], m["event_type"], state_key
    )
    if request.query.get("format") == "event":
        return json_response(event)
    return json_response(event["content"])


# With an empty state key the trailing slash is optional (room_state.yaml).
@routes.get(V3 + "/rooms/{room_id}/state/{event_type}")
@routes.get(V3 + "/rooms/{room_id}/state/{event_type}/")
async def get_state_event_empty_key(request: web.Request) -> web.Response:
    return await _state_event(request, "")


@routes.get(V3 + "/rooms/{room_id}/state/{event_type}/{state_key}")
async def get_state_event(request: web.Request) -> web.Response:
    return await _state_event(request, request.match_info["state_key"])


@routes.get(V3 + "/rooms/{room_id}/members")
async def members(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    chunk = await request.app[ROOMS].reads.members(
        requester, request.match_info["room_id"], request.query.get("membership"),
        request.query.get("not_membership"),
    )
    return json_response({"chunk": chunk})


@routes.get(V3 + "/rooms/{room_id}/joined_members")
async def joined_members(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    joined = await request.app[ROOMS].reads.joined_members(requester, request.match_info["room_id"])
    return json_response({"joined": joined})


@routes.get(V3 + "/rooms/{room_id}/event/{event_id}")
async def get_event(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    m = request.match_info
    event = await request.app[ROOMS].reads.event(requester, m["room_id"], m["event_id"])
    return json_response(event)


@routes.get(V3 + "/rooms/{room_id}/context/{event_id}")
async def context(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    m = request.match_info
    result = await request.app[ROOMS].reads.context(
        requester, m["room_id"], m["event_id"], query_int(request, "limit", 10, lo=0, hi=100),
        parse_event_filter(request.query.get("filter")),
    )
    return json_response(result)


@routes.get(V3 + "/rooms/{room_id}/messages")
async def messages(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    return json_response(await read_messages(request, requester))


async def read_messages(
    request: web.Request, requester: Requester, *, default_dir: str = "b", as_admin: bool = False
) -> dict[str, Any]:
    """A page of `{room_id}`'s events for the query's from, to, dir, limit and filter (the
    client's /messages and, `as_admin`, the admin API's room messages)."""
    direction = request.query.get("dir", default_dir)
    if direction not in ("b", "f"):
        raise MatrixError(400, "M_INVALID_PARAM", "dir must be 'b' or 'f'")
    return await request.app[ROOMS].reads.messages(
        requester, request.match_info["room_id"], from_token=request.query.get("from"),
        to_token=request.query.get("to"), backwards=direction == "b",
        limit=query_int(request, "limit", 10, lo=1, hi=1000),
        event_filter=parse_event_filter(request.query.get("filter")), as_admin=as_admin,
    )
