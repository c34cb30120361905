"""The Server-Server API listener's routes: one module per spec area."""

from __future__ import annotations

from aiohttp import web

from federation.api import devices, e2e_keys, keys, public_rooms, query


def federation_routes() -> list[web.AbstractRouteDef]:
    return [
        *keys.routes, *query.routes, *public_rooms.routes, *devices.routes, *e2e_keys.routes,
    ]
