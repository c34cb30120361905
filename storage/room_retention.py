"""Which rooms the room retention sweep looks at (MSC1763 `m.room.retention`)."""

from __future__ import annotations

import asyncpg

# Rooms whose current state holds a retention policy.
GET_ROOMS_WITH_POLICY = """
SELECT room_id FROM current_state WHERE type = 'm.room.retention' AND state_key = ''
ORDER BY room_id
"""
GET_ALL_ROOMS = "SELECT room_id FROM rooms ORDER BY room_id"


async def get_rooms_to_sweep(conn: asyncpg.Connection, *, every_room: bool) -> list[str]:
    """The rooms whose events may expire: every room this server knows when a default
    lifetime applies to rooms without a policy, otherwise those with one."""
    rows = await conn.fetch(GET_ALL_ROOMS if every_room else GET_ROOMS_WITH_POLICY)
    return [r["room_id"] for r in rows]
