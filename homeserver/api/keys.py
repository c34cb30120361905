"""Client-Server routes of the end-to-end key API: /keys/upload, /keys/query, /keys/claim,
/keys/changes, and cross-signing's /keys/device_signing/upload and /keys/signatures/upload.

Request bodies are checked for shape here (M_MISSING_PARAM, M_BAD_JSON); the keys themselves
(ids, signatures, identity keys) are checked by the services.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from homeserver.api.account_management import uia_request
from homeserver.api.auth import require_requester, require_writer
from homeserver.api.context import CROSS_SIGNING, E2E_KEYS
from homeserver.api.http import (
    field_obj,
    is_json_number,
    json_response,
    query_token,
    read_json_body,
)
from homeserver.errors import MatrixError, bad_json
from homeserver.services.e2e_keys import DEFAULT_REMOTE_TIMEOUT_S, KeyUpload
from homeserver.services.streams import StreamToken

routes = web.RouteTableDef()

PREFIX = "/_matrix/client/v3"
CROSS_SIGNING_FIELDS = {
    "master_key": "master", "self_signing_key": "self_signing", "user_signing_key": "user_signing",
}


def missing_param(error: str) -> MatrixError:
    return MatrixError(400, "M_MISSING_PARAM", error)


def _require_obj(body: dict[str, Any], key: str) -> dict[str, Any]:
    value = field_obj(body, key)
    if value is None:
        raise missing_param(f"'{key}' is required")
    return value


def _timeout_s(body: dict[str, Any]) -> float:
    """`timeout` (ms): how long to wait for other servers; at most the default."""
    if "timeout" not in body:
        return DEFAULT_REMOTE_TIMEOUT_S
    if not is_json_number(body["timeout"]):
        raise bad_json("'timeout' must be a number of milliseconds")
    return float(max(0.0, min(body["timeout"] / 1000, DEFAULT_REMOTE_TIMEOUT_S)))


def _objects_of(value: dict[str, Any], what: str) -> dict[str, dict[str, Any]]:
    """A user ID -> object map, as /keys/claim and /keys/signatures/upload take."""
    for user_id, inner in value.items():
        if not isinstance(inner, dict):
            raise bad_json(f"'{what}' of {user_id} must be an object")
    return value


def _token(request: web.Request, key: str) -> StreamToken:
    token = query_token(request, key)
    if token is None:
        raise missing_param(f"Missing '{key}' query parameter")
    return token


@routes.post(PREFIX + "/keys/upload")
async def upload_keys(request: web.Request) -> web.Response:
    requester = await require_writer(request)
    body = await read_json_body(request)
    upload = KeyUpload(
        device_keys=field_obj(body, "device_keys"),
        one_time_keys=field_obj(body, "one_time_keys") or {},
        fallback_keys=field_obj(body, "fallback_keys") or {},
    )
    counts = await request.app[E2E_KEYS].upload(requester, upload)
    return json_response({"one_time_key_counts": counts})


@routes.post(PREFIX + "/keys/query")
async def query_keys(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    body = await read_json_body(request)
    timeout_s = _timeout_s(body)
    wanted = _require_obj(body, "device_keys")
    for user_id, devices in wanted.items():
        if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
            raise bad_json(f"'device_keys' of {user_id} must be an array of device IDs")
    return json_response(await request.app[E2E_KEYS].query(requester, wanted, timeout_s))


@routes.post(PREFIX + "/keys/claim")
async def claim_keys(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    body = await read_json_body(request)
    timeout_s = _timeout_s(body)
    wanted = _objects_of(_require_obj(body, "one_time_keys"), "one_time_keys")
    for user_id, devices in wanted.items():
        if not all(isinstance(algorithm, str) for algorithm in devices.values()):
            raise bad_json(f"'one_time_keys' of {user_id} must map device IDs to algorithms")
    return json_response(await request.app[E2E_KEYS].claim(requester, wanted, timeout_s))


@routes.get(PREFIX + "/keys/changes")
async def key_changes(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    since, upto = _token(request, "from"), _token(request, "to")
    return json_response(await request.app[E2E_KEYS].changes(requester, since, upto))


@routes.post(PREFIX + "/keys/device_signing/upload")
async def upload_cross_signing_keys(request: web.Request) -> web.Response:
    requester = await require_writer(request)
    body = await read_json_body(request)
    keys = {
        key_type: key for name, key_type in CROSS_SIGNING_FIELDS.items()
        if (key := field_obj(body, name)) is not None
    }
    await request.app[CROSS_SIGNING].upload_keys(requester, keys, uia_request(request, body))
    return json_response({})


@routes.post(PREFIX + "/keys/signatures/upload")
async def upload_signatures(request: web.Request) -> web.Response:
    requester = await require_writer(request)
    signed = _objects_of(await read_json_body(request), "signatures")
    return json_response(await request.app[CROSS_SIGNING].upload_signatures(requester, signed))
