"""Stream position allocation that never lets a reader skip a position still being written.

Positions are handed out in memory by the one process that writes a stream. Transactions may
commit out of order, so the position readers are told (`current`) is the highest one below
which every allocated position has finished, committed or rolled back. A /sync that reads up to
`current` therefore never misses an event that commits later with a smaller position.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

GET_WATERMARK = "SELECT position FROM stream_watermarks WHERE stream = $1"
ADVANCE_WATERMARK = """
INSERT INTO stream_watermarks (stream, position) VALUES ($1, $2)
ON CONFLICT (stream) DO UPDATE SET position = GREATEST(stream_watermarks.position, $2)
"""


async def advance_watermark(conn: asyncpg.Connection, stream: str, position: int) -> None:
    """Record `position` as written, in the transaction that writes it."""
    await conn.execute(ADVANCE_WATERMARK, stream, position)


class StreamIdGenerator:
    def __init__(self, current: int) -> None:
        self._last_allocated = current
        self._in_flight: set[int] = set()

    @classmethod
    async def load(cls, conn: asyncpg.Connection, table: str, column: str) -> StreamIdGenerator:
        # Table and column names are code constants, never user input.
        value = await conn.fetchval(f"SELECT coalesce(max({column}), 0) FROM {table}")
        return cls(int(value))

    @classmethod
    async def load_watermark(cls, conn: asyncpg.Connection, stream: str) -> StreamIdGenerator:
        """For streams whose rows get deleted: start from the recorded high-water mark."""
        value = await conn.fetchval(GET_WATERMARK, stream)
        return cls(int(value or 0))

    @contextmanager
    def allocate(self) -> Iterator[int]:
        """Reserve the next position for the duration of the block (one transaction)."""
        self._last_allocated += 1
        position = self._last_allocated
        self._in_flight.add(position)
        try:
            yield position
        finally:
            self._in_flight.discard(position)

    @property
    def current(self) -> int:
        """The highest position readers may safely read up to."""
        if self._in_flight:
            return min(self._in_flight) - 1
        return self._last_allocated
