"""The `blocked_rooms` table: rooms a server admin closed to this server's users."""

from __future__ import annotations

import asyncpg

UPSERT_BLOCK = """
INSERT INTO blocked_rooms (room_id, user_id, blocked_ts) VALUES ($1, $2, $3)
ON CONFLICT (room_id) DO NOTHING
"""


async def insert_block(
    conn: asyncpg.Connection, room_id: str, admin_id: str, blocked_ts: int
) -> None:
    """Block a room; blocking it again keeps who blocked it first."""
    await conn.execute(UPSERT_BLOCK, room_id, admin_id, blocked_ts)


DELETE_BLOCK = "DELETE FROM blocked_rooms WHERE room_id = $1"


async def delete_block(conn: asyncpg.Connection, room_id: str) -> None:
    await conn.execute(DELETE_BLOCK, room_id)


GET_BLOCKER = "SELECT user_id FROM blocked_rooms WHERE room_id = $1"


async def get_blocker(conn: asyncpg.Connection, room_id: str) -> str | None:
    """The admin who blocked the room; None when it is not blocked."""
    blocker: str | None = await conn.fetchval(GET_BLOCKER, room_id)
    return blocker
