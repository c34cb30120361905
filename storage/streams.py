"""Stream position allocation that never lets a reader skip a position still being written.

Theory of operation. Positions are handed out in memory by the one process that writes a
stream. A writer opens an `allocate()` block around its transaction and takes the position
(`slot.position`) only when it is about to write a row, so a transaction that ends up writing
nothing (a retransmitted client transaction, a refused event) takes none. Transactions may
commit out of order, so the position readers are told (`current`) is the highest one such
that every position at or below it has finished, and it only ever names a position whose row
was committed: a token handed to a client never points past the data, and after a restart
(which resumes from the highest stored position) no position a client holds is reused.

Other processes sharing the database (workers) hold a `FollowerStreamIdGenerator` per stream:
it never allocates, and its `current` moves only when told the writer's (`advance_to`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn

import asyncpg

GET_WATERMARK = "SELECT position FROM stream_watermarks WHERE stream = $1"
ADVANCE_WATERMARK = """
INSERT INTO stream_watermarks (stream, position) VALUES ($1, $2)
ON CONFLICT (stream) DO UPDATE SET position = GREATEST(stream_watermarks.position, $2)
"""


async def advance_watermark(conn: asyncpg.Connection, stream: str, position: int) -> None:
    """Record `position` as written, in the transaction that writes it."""
    await conn.execute(ADVANCE_WATERMARK, stream, position)


class Slot:
    """One transaction's claim on stream positions, each reserved on first use.

    Most writers take one (`position`); a batch takes `nth(0)`, `nth(1)`... in order. A retried
    transaction asks again from its first position (`restart`) and gets the same ones back;
    only those its last attempt took count as written.
    """

    def __init__(self, generator: StreamIdGenerator) -> None:
        self._generator = generator
        self.reserved: list[int] = []
        self.used = 0

    @property
    def position(self) -> int:
        return self.nth(0)

    def nth(self, index: int) -> int:
        while len(self.reserved) <= index:
            self.reserved.append(self._generator._reserve())
        self.used = max(self.used, index + 1)
        return self.reserved[index]

    def restart(self) -> None:
        self.used = 0

    @property
    def last_written(self) -> int | None:
        """The highest position the transaction wrote (None: it wrote none)."""
        return self.reserved[self.used - 1] if self.used else None


class StreamIdGenerator:
    def __init__(self, current: int) -> None:
        self._last_allocated = current
        self._committed = current
        self._in_flight: set[int] = set()
        # Called after every write ends (committed or not): `current` may have moved.
        self.on_release: list[Callable[[], None]] = []

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

    @property
    def last_allocated(self) -> int:
        """The highest position handed out, committed or not."""
        return self._last_allocated

    def _reserve(self) -> int:
        self._last_allocated += 1
        self._in_flight.add(self._last_allocated)
        return self._last_allocated

    @contextmanager
    def allocate(self) -> Iterator[Slot]:
        """A slot for the duration of the block, which must enclose the transaction's commit:
        leaving the block normally means the row at `slot.position` (if taken) is committed."""
        slot = Slot(self)
        committed = False
        try:
            yield slot
            committed = True
        finally:
            self._in_flight.difference_update(slot.reserved)
            if committed and slot.used:
                self._committed = max(self._committed, slot.reserved[slot.used - 1])
            if slot.reserved:
                for callback in self.on_release:
                    callback()

    @property
    def current(self) -> int:
        """The highest position readers may safely read up to."""
        if self._in_flight:
            return min(min(self._in_flight) - 1, self._committed)
        return self._committed


class FollowerStreamIdGenerator(StreamIdGenerator):
    """A stream that another process writes: this one only reads up to what it is told.

    Exactly one process allocates each stream's positions; a follower that tried would hand
    out positions the writer also hands out, so `allocate` raises.
    """

    def _reserve(self) -> int:
        raise RuntimeError("this process follows the stream: only the main process writes it")

    def allocate(self) -> NoReturn:
        raise RuntimeError("this process follows the stream: only the main process writes it")

    def advance_to(self, position: int) -> None:
        """Move `current` up to a position the writer has made readable; never backwards."""
        if position > self._committed:
            self._committed = self._last_allocated = position
