"""Counts for the gauges operators watch (users, rooms, devices)."""

import asyncpg

GET_COUNTS = """
SELECT (SELECT count(*) FROM users WHERE NOT deactivated) AS users,
       (SELECT count(*) FROM rooms) AS rooms,
       (SELECT count(*) FROM devices) AS devices
"""


async def get_counts(conn: asyncpg.Connection) -> dict[str, int]:
    row = await conn.fetchrow(GET_COUNTS)
    return dict(row)
