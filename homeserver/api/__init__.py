"""The Client-Server API: one module per area of the spec, each with a `routes` table."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.admin import admin_routes
from homeserver.api.compat import compat_routes


def client_routes() -> list[web.AbstractRouteDef]:
    from homeserver.api import (
        account,
        account_data,
        account_management,
        appservice_ping,
        devices,
        directory,
        ephemeral,
        filters,
        health,
        key_backup,
        keys,
        legacy_sync,
        media,
        misc,
        not_offered,
        openid,
        presence,
        profile,
        push,
        relations,
        reports,
        room_membership,
        room_reads,
        room_sends,
        room_upgrades,
        rooms,
        search,
        sliding_sync,
        spaces,
        sync,
        tags,
        third_party,
        threads,
        timestamps,
        to_device,
        voip,
        well_known,
    )

    modules = (
        misc, account, profile, rooms, room_membership, room_sends, room_reads, sync, filters,
        account_data, ephemeral, to_device, key_backup, keys, media, devices, account_management,
        push, presence, tags, directory, search, legacy_sync,
        not_offered, reports, room_upgrades, openid, spaces, relations, threads,
        timestamps, sliding_sync, voip, health, well_known, appservice_ping, third_party,
    )
    routes = [route for module in modules for route in module.routes]
    return routes + compat_routes(routes) + admin_routes()


def worker_routes() -> list[web.AbstractRouteDef]:
    """A worker process's routes: /sync, and /health and /versions for load balancers' health
    checks. Everything else answers 404 M_UNRECOGNIZED there (the reverse proxy sends it to
    main)."""
    from homeserver.api import health, misc, sliding_sync, sync

    # deploy/nginx-workers.conf sends r0/sync and sliding sync here too.
    return [
        *sync.routes, *compat_routes(sync.routes), *sliding_sync.routes,
        web.get("/_matrix/client/versions", misc.versions),
        *health.routes,
    ]
