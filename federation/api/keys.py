"""Key routes: this server's keys (`GET /_matrix/key/v2/server`), the notary API
(`GET /_matrix/key/v2/query/{serverName}`, `POST /_matrix/key/v2/query`), and
`GET /_matrix/federation/v1/version`. None of them is authenticated (keys_query.yaml,
keys_server.yaml): a server must be able to learn keys before it can check signatures.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from aiohttp import web

from federation.api.context import CLOCK, NOTARY, OWN_KEYS
from homeserver.api.http import json_response, read_json_body
from homeserver.errors import bad_json, invalid_param

routes = web.RouteTableDef()


@routes.get("/_matrix/key/v2/server")
@routes.get("/_matrix/key/v2/server/{key_id}")  # deprecated form; the key ID is ignored
async def server_keys(request: web.Request) -> web.Response:
    return json_response(request.app[OWN_KEYS].response(request.app[CLOCK].now_ms()))


@routes.get("/_matrix/federation/v1/version")
async def server_version(request: web.Request) -> web.Response:
    return json_response({"server": {"name": "Moot", "version": version("moot")}})


def _timestamp(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_json(f"'{what}' must be an integer")
    return value


@routes.get("/_matrix/key/v2/query/{serverName}")
# The deprecated form naming one key ID: the answer is the server's whole key response, which
# holds that key if the server has it (as `/key/v2/server/{keyId}` ignores its key ID).
@routes.get("/_matrix/key/v2/query/{serverName}/{keyId}")
async def query_one(request: web.Request) -> web.Response:
    raw = request.query.get("minimum_valid_until_ts")
    minimum = None
    if raw is not None:
        try:
            minimum = int(raw)
        except ValueError:
            raise invalid_param("'minimum_valid_until_ts' must be an integer") from None
    keys = await request.app[NOTARY].query({request.match_info["serverName"]: minimum})
    return json_response({"server_keys": keys})


@routes.post("/_matrix/key/v2/query")
async def query_many(request: web.Request) -> web.Response:
    body = await read_json_body(request)
    criteria = body.get("server_keys")
    if not isinstance(criteria, dict):
        raise bad_json("'server_keys' must be an object")
    minimums: dict[str, int | None] = {}
    for server_name, by_key in criteria.items():
        if not isinstance(by_key, dict):
            raise bad_json(f"server_keys.{server_name} must be an object")
        wanted: list[int] = []
        for key_id, criterion in by_key.items():
            if not isinstance(criterion, dict):
                raise bad_json(f"server_keys.{server_name}.{key_id} must be an object")
            ts = _timestamp(criterion.get("minimum_valid_until_ts"), "minimum_valid_until_ts")
            if ts is not None:
                wanted.append(ts)
        # One answer per server covers all its keys: it must last as long as the most
        # demanding criterion.
        minimums[server_name] = max(wanted) if wanted else None
    return json_response({"server_keys": await request.app[NOTARY].query(minimums)})
