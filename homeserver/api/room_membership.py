"""Joining, inviting, leaving, forgetting, kicking, banning and unbanning."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.auth import require_requester
from homeserver.api.context import ROOMS
from homeserver.api.http import field_str, json_response, read_json_body, require_str

routes = web.RouteTableDef()

V3 = "/_matrix/client/v3"


# Request parameters of the join endpoints that are not member event content.
_JOIN_PARAMETERS = ("third_party_signed",)


def _via(request: web.Request) -> list[str]:
    """The servers a join or knock may go through. `server_name` is the older name of `via`
    (client-server-api "Joining rooms", "Knocking on rooms")."""
    return [*request.query.getall("via", []), *request.query.getall("server_name", [])]


async def _join(request: web.Request, target: str, *, whole_body: bool) -> web.Response:
    """A join; with `whole_body` the body is the member event's content (but its request
    parameters), else only its `reason` is."""
    requester = await require_requester(request)
    body = await read_json_body(request, allow_empty=True)
    reason = field_str(body, "reason")
    if whole_body:
        extra = {k: v for k, v in body.items() if k not in _JOIN_PARAMETERS}
    else:
        extra = {} if reason is None else {"reason": reason}
    room_id = await request.app[ROOMS].join(requester, target, extra, _via(request))
    return json_response({"room_id": room_id})


# As Synapse: `/join/{roomIdOrAlias}` keeps the whole body in the member event (custom keys
# included: Sytest and Complement "can join a room with custom content"), `/rooms/{roomId}/
# join` only the `reason`.
@routes.post(V3 + "/join/{room_id_or_alias}")
async def join_by_id_or_alias(request: web.Request) -> web.Response:
    return await _join(request, request.match_info["room_id_or_alias"], whole_body=True)


@routes.post(V3 + "/knock/{room_id_or_alias}")
async def knock(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    body = await read_json_body(request, allow_empty=True)
    room_id = await request.app[ROOMS].knock(
        requester, request.match_info["room_id_or_alias"], field_str(body, "reason"),
        _via(request),
    )
    return json_response({"room_id": room_id})


@routes.post(V3 + "/rooms/{room_id}/join")
async def join_room(request: web.Request) -> web.Response:
    return await _join(request, request.match_info["room_id"], whole_body=False)


async def _set(request: web.Request, action: str, *, target_from_body: bool) -> web.Response:
    requester = await require_requester(request)
    body = await read_json_body(request, allow_empty=not target_from_body)
    target = require_str(body, "user_id") if target_from_body else requester.user_id
    await request.app[ROOMS].set_membership(
        requester, request.match_info["room_id"], target, action, field_str(body, "reason")
    )
    return json_response({})


@routes.post(V3 + "/rooms/{room_id}/invite")
async def invite(request: web.Request) -> web.Response:
    return await _set(request, "invite", target_from_body=True)


@routes.post(V3 + "/rooms/{room_id}/leave")
async def leave(request: web.Request) -> web.Response:
    return await _set(request, "leave", target_from_body=False)


@routes.post(V3 + "/rooms/{room_id}/kick")
async def kick(request: web.Request) -> web.Response:
    return await _set(request, "kick", target_from_body=True)


@routes.post(V3 + "/rooms/{room_id}/ban")
async def ban(request: web.Request) -> web.Response:
    return await _set(request, "ban", target_from_body=True)


@routes.post(V3 + "/rooms/{room_id}/unban")
async def unban(request: web.Request) -> web.Response:
    return await _set(request, "unban", target_from_body=True)


@routes.post(V3 + "/rooms/{room_id}/forget")
async def forget(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    await read_json_body(request, allow_empty=True)
    await request.app[ROOMS].forget(requester, request.match_info["room_id"])
    return json_response({})
