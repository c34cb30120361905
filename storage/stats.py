"""Counts for the gauges operators watch (users, rooms, devices, the most forward extremities
of any room), and the admin API's statistics (users' media usage, the largest rooms)."""

import asyncpg

from storage.directory import like_pattern

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


# What each local user uploaded, for Synapse's "users' media usage statistics": $1/$2 bound
# the upload time (ms, either NULL), $3 is an ILIKE pattern over localpart and display name.
_MEDIA_USAGE = """
WITH usage AS (
    SELECT user_id, count(*) AS media_count, coalesce(sum(size_bytes), 0)::bigint AS media_length
    FROM local_media
    WHERE user_id IS NOT NULL AND content_hash IS NOT NULL
      AND ($1::bigint IS NULL OR created_ts >= $1) AND ($2::bigint IS NULL OR created_ts <= $2)
    GROUP BY user_id
)
SELECT usage.user_id, p.displayname, usage.media_count, usage.media_length
FROM usage LEFT JOIN profiles p USING (user_id)
WHERE $3::text IS NULL OR split_part(substr(usage.user_id, 2), ':', 1) ILIKE $3
      OR p.displayname ILIKE $3
"""
MEDIA_USAGE_ORDERS = {
    "user_id": "user_id", "displayname": "displayname", "media_length": "media_length",
    "media_count": "media_count",
}
COUNT_MEDIA_USAGE = f"SELECT count(*) FROM ({_MEDIA_USAGE}) AS matching"


async def get_media_usage(
    conn: asyncpg.Connection, from_ts: int | None, until_ts: int | None, search: str | None,
    offset: int, limit: int, *, order_by: str, backwards: bool,
) -> tuple[list[asyncpg.Record], int]:
    """A page of (user_id, displayname, media_count, media_length) of the users who uploaded
    media in the time range, ordered by `order_by` (a key of MEDIA_USAGE_ORDERS); the total."""
    pattern = None if search is None else like_pattern(search)
    direction = "DESC" if backwards else "ASC"
    page = (
        f"{_MEDIA_USAGE} ORDER BY {MEDIA_USAGE_ORDERS[order_by]} {direction} NULLS FIRST, "
        f"user_id {direction} LIMIT $4 OFFSET $5"
    )
    total: int = await conn.fetchval(COUNT_MEDIA_USAGE, from_ts, until_ts, pattern)
    rows = await conn.fetch(page, from_ts, until_ts, pattern, limit, offset)
    return list(rows), total


# The stored JSON of a room's events, the bulk of what a room costs the database (its state
# snapshots and index entries grow with it). Reads every event: seconds on a large server.
GET_LARGEST_ROOMS = """
SELECT room_id, sum(pg_column_size(json))::bigint AS estimated_size FROM events
GROUP BY room_id ORDER BY estimated_size DESC, room_id LIMIT $1
"""


async def get_largest_rooms(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    """The `limit` rooms whose events take the most space, largest first."""
    return list(await conn.fetch(GET_LARGEST_ROOMS, limit))
