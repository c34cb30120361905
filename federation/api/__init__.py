"""The Server-Server API listener's routes."""

from __future__ import annotations

from aiohttp import web

from federation.api.keys import ServerKeys


def federation_routes(keys: ServerKeys) -> list[web.RouteDef]:
    return [
        web.get("/_matrix/key/v2/server", keys.handle_server_keys),
        web.get("/_matrix/key/v2/server/{key_id}", keys.handle_server_keys),
        web.get("/_matrix/federation/v1/version", keys.handle_version),
    ]
