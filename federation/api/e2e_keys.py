"""End-to-End Encryption over federation: `POST /_matrix/federation/v1/user/keys/query` and
`POST /_matrix/federation/v1/user/keys/claim`, answered by the client API's key service.

The spec says the requested users "must be local to the receiving homeserver" without naming an
error, and neither answer has a place to report a user: users of other servers are left out of
the answer (as unknown users are), so that one stray ID does not cost the peer every other
user's keys. A malformed user ID is still a 400 M_INVALID_PARAM.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from federation.api.auth import authenticated
from federation.api.bodies import object_body, required_object
from federation.api.context import E2E_KEYS
from federation.inbound_auth import AuthenticatedRequest
from homeserver.api.http import json_response
from homeserver.errors import bad_json
from homeserver.services.e2e_keys import split_by_server

routes = web.RouteTableDef()

PREFIX = "/_matrix/federation/v1/user/keys"
# What a peer may see of a user's keys: never the user-signing key, which is its owner's.
KEY_FIELDS = ("device_keys", "master_keys", "self_signing_keys")


def _local(request: web.Request, wanted: dict[str, Any]) -> dict[str, Any]:
    local, _ = split_by_server(list(wanted), request.app[E2E_KEYS].server_name)
    return {user_id: wanted[user_id] for user_id in local}


@routes.post(PREFIX + "/query")
@authenticated
async def query_keys(request: web.Request, auth: AuthenticatedRequest) -> web.Response:
    wanted = required_object(object_body(auth), "device_keys")
    for user_id, devices in wanted.items():
        if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
            raise bad_json(f"'device_keys' of {user_id} must be an array of device IDs")
    keys = await request.app[E2E_KEYS].local_keys(_local(request, wanted), viewer=None)
    return json_response({field: keys[field] for field in KEY_FIELDS})


@routes.post(PREFIX + "/claim")
@authenticated
async def claim_keys(request: web.Request, auth: AuthenticatedRequest) -> web.Response:
    wanted = required_object(object_body(auth), "one_time_keys")
    for user_id, devices in wanted.items():
        if not isinstance(devices, dict) or not all(isinstance(a, str) for a in devices.values()):
            raise bad_json(f"'one_time_keys' of {user_id} must map device IDs to algorithms")
    claimed = await request.app[E2E_KEYS].claim_local(_local(request, wanted))
    return json_response({"one_time_keys": claimed})
