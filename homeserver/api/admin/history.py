"""A room's history: `POST /_synapse/admin/v1/purge_history/{roomId}[/{eventId}]` deletes its
old events in the background, `GET /_synapse/admin/v1/purge_history_status/{purgeId}` tells
how that went (Synapse's purge_history_api.md)."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.admin.auth import ADMIN, log_admin_action, require_admin
from homeserver.api.context import HISTORY_PURGES
from homeserver.api.http import (
    field_bool,
    field_str,
    json_response,
    path_room_id,
    read_json_body,
)
from homeserver.errors import MatrixError, bad_json, invalid_param, not_found
from homeserver.protocol.identifiers import is_valid_event_id
from storage.history_purge import MAX_POSITION

routes = web.RouteTableDef()


@routes.post(ADMIN + "/v1/purge_history/{roomId}")
@routes.post(ADMIN + "/v1/purge_history/{roomId}/{eventId}")
async def purge_history(request: web.Request) -> web.Response:
    admin = await require_admin(request)
    room_id = path_room_id(request)
    body = await read_json_body(request, allow_empty=True)
    delete_local_events = field_bool(body, "delete_local_events")
    event_id = request.match_info.get("eventId") or field_str(body, "purge_up_to_event_id")
    purges = request.app[HISTORY_PURGES]
    if event_id is not None:
        if not is_valid_event_id(event_id):
            raise invalid_param(f"{event_id!r} is not a valid event ID")
        point = await purges.point_at_event(room_id, event_id)
    elif "purge_up_to_ts" in body:
        ts = body["purge_up_to_ts"]
        if not isinstance(ts, int) or isinstance(ts, bool):
            raise bad_json("'purge_up_to_ts' must be an integer")
        if not 0 <= ts <= MAX_POSITION:
            raise invalid_param("'purge_up_to_ts' is out of range")
        found = await purges.point_before_ts(room_id, ts)
        if found is None:  # Synapse's answer, code and all
            raise MatrixError(400, "M_NOT_FOUND", "There is no event to be purged")
        point = found
    else:
        raise bad_json("must specify purge_up_to_event_id or purge_up_to_ts")
    purge_id = purges.start(room_id, point, delete_local_events=delete_local_events)
    log_admin_action(
        admin, "purge_history", room_id=room_id, up_to=point.event_id,
        delete_local_events=delete_local_events, purge_id=purge_id,
    )
    return json_response({"purge_id": purge_id})


@routes.get(ADMIN + "/v1/purge_history_status/{purgeId}")
async def purge_history_status(request: web.Request) -> web.Response:
    await require_admin(request)
    status = request.app[HISTORY_PURGES].status(request.match_info["purgeId"])
    if status is None:
        raise not_found("Unknown purge ID")
    return json_response(status.to_json())
