"""The `remote_media` table: which file holds each cached item of another server's media.

The files are the media service's content store, shared with local media (`storage.media`
asks this table too before a file is removed). Eviction keeps the most recently used items
whose sizes add up to the cache's limit and deletes the rest in one statement.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class RemoteMediaRow:
    server_name: str
    media_id: str
    content_hash: str
    content_type: str
    upload_name: str | None
    size_bytes: int
    last_access_ts: int


GET_REMOTE_MEDIA = """
SELECT server_name, media_id, content_hash, content_type, upload_name, size_bytes, last_access_ts
FROM remote_media WHERE server_name = $1 AND media_id = $2
"""


async def get_remote_media(
    conn: asyncpg.Connection, server_name: str, media_id: str
) -> RemoteMediaRow | None:
    row = await conn.fetchrow(GET_REMOTE_MEDIA, server_name, media_id)
    return None if row is None else RemoteMediaRow(**dict(row))


# Another process may have cached the same item meanwhile: its row stays (same bytes, or
# newer ones that are as good).
INSERT_REMOTE_MEDIA = """
INSERT INTO remote_media (server_name, media_id, content_hash, content_type, upload_name,
                          size_bytes, fetched_ts, last_access_ts)
VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
ON CONFLICT (server_name, media_id) DO NOTHING
"""


async def insert_remote_media(
    conn: asyncpg.Connection, row: RemoteMediaRow, now_ts: int
) -> None:
    await conn.execute(
        INSERT_REMOTE_MEDIA, row.server_name, row.media_id, row.content_hash, row.content_type,
        row.upload_name, row.size_bytes, now_ts,
    )


TOUCH_REMOTE_MEDIA = """
UPDATE remote_media SET last_access_ts = $3::bigint
WHERE server_name = $1 AND media_id = $2 AND last_access_ts <= $3::bigint - $4::bigint
"""


async def touch_remote_media(
    conn: asyncpg.Connection, server_name: str, media_id: str, now_ts: int, granularity_ms: int
) -> None:
    """Record a download, at most once per `granularity_ms`."""
    await conn.execute(TOUCH_REMOTE_MEDIA, server_name, media_id, now_ts, granularity_ms)


# The running total from the most recently used down; every row past the limit goes, except
# the item just fetched (its caller is about to serve it).
EVICT_REMOTE_MEDIA = """
WITH ranked AS (
    SELECT server_name, media_id,
           sum(size_bytes) OVER (ORDER BY last_access_ts DESC, server_name, media_id) AS total
    FROM remote_media
)
DELETE FROM remote_media AS r USING ranked
WHERE r.server_name = ranked.server_name AND r.media_id = ranked.media_id
  AND ranked.total > $1 AND NOT (r.server_name = $2 AND r.media_id = $3)
RETURNING r.content_hash
"""


async def evict_remote_media(
    conn: asyncpg.Connection, max_bytes: int, keep_server: str, keep_media_id: str
) -> list[str]:
    """Delete the least recently used rows until the rest fit in `max_bytes` (keeping the
    one named); the content hashes of the deleted rows."""
    rows = await conn.fetch(EVICT_REMOTE_MEDIA, max_bytes, keep_server, keep_media_id)
    return sorted({row["content_hash"] for row in rows})
