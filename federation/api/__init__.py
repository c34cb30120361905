"""The Server-Server API listener's routes: one module per spec area."""

from __future__ import annotations

from aiohttp import web

from federation.api import (
    backfill,
    devices,
    e2e_keys,
    events,
    hierarchy,
    keys,
    media,
    membership,
    openid,
    public_rooms,
    query,
    timestamps,
    transactions,
)


def federation_routes() -> list[web.AbstractRouteDef]:
    return [
        *keys.routes, *query.routes, *public_rooms.routes, *devices.routes, *e2e_keys.routes,
        *transactions.routes, *membership.routes, *events.routes, *backfill.routes,
        *openid.routes, *hierarchy.routes, *timestamps.routes, *media.routes,
    ]
