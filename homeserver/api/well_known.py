"""Discovery files: `/.well-known/matrix/server` (Server-Server API, "Server Discovery") and
`/.well-known/matrix/client` (Client-Server API, "Well-known URIs").

Both are served on the client listener, as Synapse does: the reverse proxy that answers
`https://<server name>/` sends `/.well-known/` there, and the federation listener is only ever
reached after discovery. `json_response` adds the CORS headers the spec asks of both, and the
middleware answers their OPTIONS.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from homeserver.api.client_address import client_scheme
from homeserver.api.context import CONFIG
from homeserver.api.http import json_response
from homeserver.config import Config
from homeserver.errors import not_found
from homeserver.protocol.identifiers import is_valid_server_name

routes = web.RouteTableDef()


def configured_discovery(config: Config) -> dict[str, Any] | None:
    """The client discovery information the operator configured (`well_known.client`, else
    `server.public_baseurl`), or None. Login responses carry exactly this, so they never
    disagree with the file; a guess from the request is for the file only (a client that
    reached us learns nothing from being told where it is)."""
    if config.well_known.client is not None:
        return config.well_known.client
    if config.server.public_baseurl is not None:
        return {"m.homeserver": {"base_url": config.server.public_baseurl.rstrip("/")}}
    return None


@routes.get("/.well-known/matrix/server")
async def server_delegation(request: web.Request) -> web.Response:
    delegated = request.app[CONFIG].well_known.server
    if delegated is None:
        raise not_found("This server does not delegate federation (well_known.server)")
    return json_response({"m.server": delegated})


@routes.get("/.well-known/matrix/client")
async def client_discovery(request: web.Request) -> web.Response:
    configured = configured_discovery(request.app[CONFIG])
    if configured is not None:
        return json_response(configured)
    # Unconfigured: the URL this request reached us at, as the trusted proxy in front saw it
    # (X-Forwarded-Proto and the Host it passes on), never the proxy's own hop to us.
    host = request.host
    if not is_valid_server_name(host):
        raise not_found("No base URL is configured and the Host header names no server")
    return json_response({"m.homeserver": {"base_url": f"{client_scheme(request)}://{host}"}})
