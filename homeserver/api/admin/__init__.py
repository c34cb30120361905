"""Synapse's admin API (`/_synapse/admin/...`), which the operators' tools speak
(`register_new_matrix_user`, synadm, synapse-admin): one module per area, as Synapse's admin
docs group them. Paths, bodies and answers follow those docs; Moot is stricter than Synapse
with wrong types (a 4xx Matrix error, never a 500) and ignores query parameters it does not
read (synadm sends `locked=false`, for one).

Every route but shared-secret registration needs the access token of a server admin
(`auth.require_admin`), and every change is logged with the admin's user ID
(`auth.log_admin_action`)."""

from __future__ import annotations

from aiohttp import web


def admin_routes() -> list[web.AbstractRouteDef]:
    from homeserver.api.admin import (
        devices,
        federation,
        history,
        media,
        register,
        registration_tokens,
        reports,
        room_deletes,
        rooms,
        server,
        server_notices,
        statistics,
        users,
    )

    modules = (
        devices,
        federation,
        history,
        media,
        register,
        registration_tokens,
        reports,
        room_deletes,
        rooms,
        server,
        server_notices,
        statistics,
        users,
    )
    return [route for module in modules for route in module.routes]
