"""Server notices (Synapse's docs/admin_api/server_notices.md): `POST /v1/send_server_notice`
and, idempotent per transaction ID, `PUT /v1/send_server_notice/{txnId}`, with `user_id`,
`content`, `type` (default m.room.message) and `state_key`; answers `{"event_id": ...}`.
Needs `server_notices.localpart` (else 400, as Synapse)."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.admin.auth import ADMIN, log_admin_action, require_admin
from homeserver.api.context import SERVER_NOTICES
from homeserver.api.http import field_obj, field_str, json_response, read_json_body
from homeserver.errors import MatrixError
from storage.rooms import ClientTxnKey

routes = web.RouteTableDef()

SEND = ADMIN + "/v1/send_server_notice"


@routes.post(SEND)
@routes.put(SEND + "/{txn_id}")
async def send_server_notice(request: web.Request) -> web.Response:
    admin = await require_admin(request)
    body = await read_json_body(request)
    user_id = field_str(body, "user_id")
    content = field_obj(body, "content")
    if user_id is None or content is None:
        raise MatrixError(400, "M_MISSING_PARAM", "'user_id' and 'content' are required")
    event_type = field_str(body, "type") or "m.room.message"
    state_key = field_str(body, "state_key")
    txn_id = request.match_info.get("txn_id")
    txn = None if txn_id is None else ClientTxnKey(
        admin.user_id, admin.device_id, txn_id, f"send_server_notice/{user_id}"
    )
    event_id = await request.app[SERVER_NOTICES].send(
        user_id, event_type, content, state_key, txn
    )
    log_admin_action(
        admin, "send_server_notice", user_id=user_id, type=event_type, event_id=event_id
    )
    return json_response({"event_id": event_id})
