"""Figures for server admins (Synapse's statistics.md): how much media each local user
uploaded, and which rooms take the most database space."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from storage import stats as store
from storage.database import Database

LARGEST_ROOMS = 10  # as Synapse lists


@dataclass(frozen=True, slots=True)
class MediaUsageQuery:
    """Uploads between `from_ts` and `until_ts` (ms, inclusive, None: unbounded) of users
    whose localpart or display name holds `search` (None: everyone)."""

    from_ts: int | None = None
    until_ts: int | None = None
    search: str | None = None


class Statistics:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def media_usage(
        self, query: MediaUsageQuery, offset: int, limit: int, *, order_by: str,
        backwards: bool,
    ) -> tuple[list[dict[str, Any]], int]:
        rows, total = await self._db.run(lambda conn: store.get_media_usage(
            conn, query.from_ts, query.until_ts, query.search, offset, limit,
            order_by=order_by, backwards=backwards,
        ))
        return [dict(row) for row in rows], total

    async def largest_rooms(self) -> list[dict[str, Any]]:
        rows = await self._db.run(lambda conn: store.get_largest_rooms(conn, LARGEST_ROOMS))
        return [dict(row) for row in rows]
