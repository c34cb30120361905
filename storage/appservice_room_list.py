"""Writes to the application services' per-network room directories (`appservice_room_list`,
migration 0025). The listings that read it are in `storage/directory.py`."""

from __future__ import annotations

import asyncpg

INSERT_LISTED_ROOM = """
INSERT INTO appservice_room_list (appservice_id, network_id, room_id) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING
"""


async def insert_listed_room(
    conn: asyncpg.Connection, appservice_id: str, network_id: str, room_id: str
) -> None:
    """List the room in the service's network directory (again is a no-op)."""
    await conn.execute(INSERT_LISTED_ROOM, appservice_id, network_id, room_id)


DELETE_LISTED_ROOM = """
DELETE FROM appservice_room_list
WHERE appservice_id = $1 AND network_id = $2 AND room_id = $3
"""


async def delete_listed_room(
    conn: asyncpg.Connection, appservice_id: str, network_id: str, room_id: str
) -> None:
    await conn.execute(DELETE_LISTED_ROOM, appservice_id, network_id, room_id)
