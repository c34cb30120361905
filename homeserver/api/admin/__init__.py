"""Synapse's admin API (`/_synapse/admin/...`), which the operators' tools speak
(`register_new_matrix_user`, synadm, synapse-admin): one module per area, as Synapse's admin
docs group them. Paths, bodies and answers follow those docs; Moot is stricter than Synapse
with wrong types (a 4xx Matrix error, never a 500) and ignores query parameters it does not
read (synadm sends `locked=false`, for one).

Every route but shared-secret registration needs the access token of a server admin
(`auth.require_admin`), and every change is logged with the admin's user ID
(`auth.log_admin_action`)."""

from __future__ import annotations

from importlib import import_module

from aiohttp import web

# One module per area (homeserver/api/admin/<area>.py), each with its `routes` table.
AREAS = (
    "devices", "federation", "history", "media", "register", "registration_tokens", "reports",
    "room_deletes", "rooms", "server", "server_notices", "statistics", "users",
)


def admin_routes() -> list[web.AbstractRouteDef]:
    modules = [import_module(f"{__name__}.{area}") for area in AREAS]
    return [route for module in modules for route in module.routes]
