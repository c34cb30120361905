"""The Client-Server API: one module per area of the spec, each with a `routes` table."""

from __future__ import annotations

from aiohttp import web


def client_routes() -> list[web.AbstractRouteDef]:
    from homeserver.api import (
        account,
        account_data,
        ephemeral,
        filters,
        key_backup,
        keys,
        misc,
        profile,
        room_membership,
        room_reads,
        room_sends,
        rooms,
        sync,
        to_device,
    )

    modules = (
        misc, account, profile, rooms, room_membership, room_sends, room_reads, sync, filters,
        account_data, ephemeral, to_device, key_backup, keys,
    )
    return [route for module in modules for route in module.routes]
