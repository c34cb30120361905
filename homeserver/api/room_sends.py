"""Sending events: messages (idempotent per device and transaction ID), state, redactions.

An application service may set the `origin_server_ts` of the messages and state it sends with
`?ts=` (spec "Timestamp massaging"; bridges importing history); a user's `ts` is ignored.
"""

from __future__ import annotations

import re

from aiohttp import web

from homeserver.api.auth import require_requester
from homeserver.api.context import ROOMS
from homeserver.api.http import field_str, json_response, read_json_body
from homeserver.errors import invalid_param
from homeserver.protocol.canonical_json import MAX_INT
from homeserver.services.requester import Requester

routes = web.RouteTableDef()

V3 = "/_matrix/client/v3"
_TIMESTAMP = re.compile(r"[0-9]{1,16}")


def massaged_ts(request: web.Request, requester: Requester) -> int | None:
    """The `ts` an application service gave, or None: a millisecond time `origin_server_ts`
    can hold (a JSON-safe non-negative integer), else 400 M_INVALID_PARAM."""
    raw = request.query.get("ts")
    if raw is None or requester.appservice is None:
        return None
    if _TIMESTAMP.fullmatch(raw) is None or int(raw) > MAX_INT:
        raise invalid_param("'ts' must be a non-negative integer of milliseconds")
    return int(raw)


@routes.put(V3 + "/rooms/{room_id}/send/{event_type}/{txn_id}")
async def send_message(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    content = await read_json_body(request, event_content=True)
    m = request.match_info
    event_id = await request.app[ROOMS].send_event(
        requester, m["room_id"], m["event_type"], content, txn_id=m["txn_id"],
        origin_server_ts=massaged_ts(request, requester),
    )
    return json_response({"event_id": event_id})


@routes.post(V3 + "/rooms/{room_id}/send/{event_type}")
async def send_message_without_txn(request: web.Request) -> web.Response:
    """Not in the spec, but served by Synapse and used by older clients and scripts: a send
    with no transaction ID, so a retried request sends the event again."""
    requester = await require_requester(request)
    content = await read_json_body(request, event_content=True)
    m = request.match_info
    event_id = await request.app[ROOMS].send_event(
        requester, m["room_id"], m["event_type"], content
    )
    return json_response({"event_id": event_id})


async def _put_state(request: web.Request, state_key: str) -> web.Response:
    requester = await require_requester(request)
    content = await read_json_body(request, event_content=True)
    m = request.match_info
    event_id = await request.app[ROOMS].send_event(
        requester, m["room_id"], m["event_type"], content, state_key=state_key,
        origin_server_ts=massaged_ts(request, requester),
    )
    return json_response({"event_id": event_id})


# With an empty state key the trailing slash is optional (room_state.yaml).
@routes.put(V3 + "/rooms/{room_id}/state/{event_type}")
@routes.put(V3 + "/rooms/{room_id}/state/{event_type}/")
async def put_state_empty_key(request: web.Request) -> web.Response:
    return await _put_state(request, "")


@routes.put(V3 + "/rooms/{room_id}/state/{event_type}/{state_key}")
async def put_state(request: web.Request) -> web.Response:
    return await _put_state(request, request.match_info["state_key"])


@routes.put(V3 + "/rooms/{room_id}/redact/{event_id}/{txn_id}")
async def redact(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    body = await read_json_body(request, allow_empty=True)
    m = request.match_info
    event_id = await request.app[ROOMS].redact(
        requester, m["room_id"], m["event_id"], field_str(body, "reason"), m["txn_id"]
    )
    return json_response({"event_id": event_id})
