"""The `url_previews` table: the URL previews fetched, per URL and fetch time."""

from __future__ import annotations

from typing import Any

import asyncpg

GET_PREVIEW = """
SELECT og FROM url_previews
WHERE url = $1 AND fetched_ts <= $2 AND expires_ts > $2
ORDER BY fetched_ts DESC LIMIT 1
"""


async def get_preview(conn: asyncpg.Connection, url: str, at_ts: int) -> dict[str, Any] | None:
    """The newest preview of `url` fetched at or before `at_ts` and still fresh then."""
    og: dict[str, Any] | None = await conn.fetchval(GET_PREVIEW, url, at_ts)
    return og


INSERT_PREVIEW = """
INSERT INTO url_previews (url, fetched_ts, expires_ts, og, media_id) VALUES ($1, $2, $3, $4, $5)
"""


async def insert_preview(
    conn: asyncpg.Connection, url: str, fetched_ts: int, expires_ts: int, og: dict[str, Any],
    media_id: str | None,
) -> None:
    await conn.execute(INSERT_PREVIEW, url, fetched_ts, expires_ts, og, media_id)


DELETE_EXPIRED = "DELETE FROM url_previews WHERE expires_ts <= $1"


async def delete_expired(conn: asyncpg.Connection, before_ts: int) -> None:
    """Forget previews that stopped being fresh before `before_ts`."""
    await conn.execute(DELETE_EXPIRED, before_ts)
