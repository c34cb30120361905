"""Client-Server route for `PUT /sendToDevice/{eventType}/{txnId}` (Send-to-Device messaging)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from homeserver.api.auth import require_requester
from homeserver.api.context import RATELIMITER, TO_DEVICE
from homeserver.api.http import json_response, read_json_body
from homeserver.errors import MatrixError, bad_json, invalid_param
from homeserver.protocol.identifiers import is_valid_user_id

routes = web.RouteTableDef()

PREFIX = "/_matrix/client/v3"


def parse_messages(body: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """`messages: {user_id: {device_id or "*": content}}` as (user_id, device_id, content)."""
    if "messages" not in body:
        raise MatrixError(400, "M_MISSING_PARAM", "'messages' is required")
    messages = body["messages"]
    if not isinstance(messages, dict):
        raise bad_json("'messages' must be an object")
    parsed: list[tuple[str, str, dict[str, Any]]] = []
    for user_id, by_device in messages.items():
        if not is_valid_user_id(user_id):
            raise invalid_param(f"{user_id!r} is not a valid user ID")
        if not isinstance(by_device, dict):
            raise bad_json(f"messages for {user_id} must be an object of device IDs")
        for device_id, content in by_device.items():
            if not device_id:
                raise invalid_param(f"empty device ID in messages for {user_id}")
            if not isinstance(content, dict):
                raise bad_json(f"the message for {user_id} {device_id} must be an object")
            parsed.append((user_id, device_id, content))
    return parsed


@routes.put(PREFIX + "/sendToDevice/{eventType}/{txnId}")
async def send_to_device(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    request.app[RATELIMITER].check_user("per_user", requester)
    messages = parse_messages(await read_json_body(request))
    m = request.match_info
    await request.app[TO_DEVICE].send(requester, m["eventType"], m["txnId"], messages)
    return json_response({})
