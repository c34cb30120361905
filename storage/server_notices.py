"""The `server_notices_rooms` table: each user's server notices room."""

from __future__ import annotations

import asyncpg

GET_NOTICES_ROOM = "SELECT room_id FROM server_notices_rooms WHERE user_id = $1"


async def get_notices_room(conn: asyncpg.Connection, user_id: str) -> str | None:
    room_id: str | None = await conn.fetchval(GET_NOTICES_ROOM, user_id)
    return room_id


UPSERT_NOTICES_ROOM = """
INSERT INTO server_notices_rooms (user_id, room_id) VALUES ($1, $2)
ON CONFLICT (user_id) DO UPDATE SET room_id = EXCLUDED.room_id
"""


async def upsert_notices_room(conn: asyncpg.Connection, user_id: str, room_id: str) -> None:
    """Make `room_id` the user's notices room (replacing one the notices user lost)."""
    await conn.execute(UPSERT_NOTICES_ROOM, user_id, room_id)
