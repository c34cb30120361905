"""Counts for the gauges operators watch (users, rooms, devices, the most forward extremities
of any room)."""

import asyncpg

GET_COUNTS = """
SELECT (SELECT count(*) FROM users WHERE NOT deactivated) AS users,
       (SELECT count(*) FROM rooms) AS rooms,
       (SELECT count(*) FROM devices) AS devices,
       (SELECT coalesce(max(heads), 0)
          FROM (SELECT count(*) AS heads FROM forward_extremities GROUP BY room_id) h)
         AS forward_extremities_max
"""


async def get_counts(conn: asyncpg.Connection) -> dict[str, int]:
    row = await conn.fetchrow(GET_COUNTS)
    return dict(row)
