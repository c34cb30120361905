"""`POST /_matrix/client/v1/appservice/{appserviceId}/ping` (client-server-api "Application
Service API extensions", application-service-api "Pinging"; homeserver/services/
appservice_queries.py does the pinging)."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.auth import access_token, require_requester
from homeserver.api.context import APPSERVICE_QUERIES, APPSERVICES
from homeserver.api.http import json_response, read_json_body
from homeserver.errors import forbidden, invalid_param

routes = web.RouteTableDef()


@routes.post("/_matrix/client/v1/appservice/{appserviceId}/ping")
async def ping(request: web.Request) -> web.Response:
    token = access_token(request)
    caller = None if token is None else request.app[APPSERVICES].by_as_token(token)
    if caller is None:
        await require_requester(request)  # 401 for a missing or unknown token
        raise forbidden("Only an application service may ping, with its own as_token")
    body = await read_json_body(request)
    transaction_id = body.get("transaction_id")
    if transaction_id is not None and not isinstance(transaction_id, str):
        raise invalid_param("transaction_id must be a string")
    result = await request.app[APPSERVICE_QUERIES].ping(
        caller, request.match_info["appserviceId"], transaction_id
    )
    return json_response(result)
