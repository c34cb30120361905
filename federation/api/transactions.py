"""`PUT /_matrix/federation/v1/send/{txnId}`: a transaction of PDUs and EDUs from a peer."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from federation.api.auth import authenticated_transaction
from federation.api.context import TRANSACTIONS
from federation.inbound_auth import AuthenticatedRequest
from federation.transactions import MAX_EDUS, MAX_PDUS
from homeserver.api.http import json_response
from homeserver.errors import MatrixError, bad_json

routes = web.RouteTableDef()


@routes.put("/_matrix/federation/v1/send/{txnId}")
@authenticated_transaction
async def send_transaction(request: web.Request, auth: AuthenticatedRequest) -> web.Response:
    body = auth.content
    if not isinstance(body, dict):
        raise bad_json("The transaction must be a JSON object")
    origin = body.get("origin")
    if origin is not None and origin != auth.origin:
        raise MatrixError(403, "M_FORBIDDEN", "The transaction's origin is not the signer")
    pdus, edus = body.get("pdus", []), body.get("edus", [])
    if not isinstance(pdus, list) or not isinstance(edus, list):
        raise bad_json("'pdus' and 'edus' must be arrays")
    if len(pdus) > MAX_PDUS or len(edus) > MAX_EDUS:
        raise bad_json(f"A transaction holds at most {MAX_PDUS} PDUs and {MAX_EDUS} EDUs")
    if not all(isinstance(p, dict) for p in pdus) or not all(isinstance(e, dict) for e in edus):
        raise bad_json("Every PDU and EDU must be a JSON object")
    answer: dict[str, Any] = await request.app[TRANSACTIONS].handle(
        auth.origin, request.match_info["txnId"], pdus, edus
    )
    return json_response(answer)
