"""Messages between processes sharing one database, over PostgreSQL LISTEN/NOTIFY.

Theory of operation. Both ends use dedicated connections, never pooled ones: a pooled
connection is lent to other work between uses, and a LISTEN must stay on one session.

- `Publisher` sends `SELECT pg_notify(channel, payload)` from one task draining a queue, so
  messages leave in the order they were published; PostgreSQL delivers the notifications of
  one session in commit order, so listeners receive them in that order too. A failed send is
  retried after reconnecting (with backoff), so a message may arrive twice but is never
  dropped while the process lives: receivers must apply messages idempotently. (PostgreSQL
  also folds identical payloads sent in one batch into one, which idempotent messages allow.)
- `Listener` LISTENs on its channels and hands each payload to a callback, in the event loop.
  NOTIFY is not stored: a listener that is disconnected misses what is sent meanwhile. So when
  its connection drops (noticed by asyncpg or by a periodic `SELECT 1`), it reconnects with
  backoff and then calls `on_connect(True)`, for the caller to catch up from the database.
- A payload is at most 8000 bytes (PostgreSQL's default); `chunk_payloads` splits a message's
  list over several payloads of at most `MAX_PAYLOAD_BYTES`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

NOTIFY = "SELECT pg_notify($1, $2)"
# PostgreSQL refuses payloads of 8000 bytes or more; this leaves room to spare.
MAX_PAYLOAD_BYTES = 7000
MIN_BACKOFF_S = 0.1
MAX_BACKOFF_S = 10.0
HEALTH_CHECK_S = 10.0
HEALTH_TIMEOUT_S = 5.0
MAX_BATCH = 500
CLOSE_DRAIN_S = 2.0

# Shown in pg_stat_activity, so operators can tell these sessions from the pool's.
LISTEN_APPLICATION = "moot replication listen"
NOTIFY_APPLICATION = "moot replication notify"

# What a lost or refused connection raises.
CONNECTION_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def chunk_payloads(
    message: Mapping[str, Any], key: str, limit: int = MAX_PAYLOAD_BYTES
) -> list[str]:
    """`message` as JSON payloads of at most `limit` bytes, its list under `key` split between
    them in order; every payload but the first carries `"cont": true`. An item too large for
    any payload on its own is a ValueError."""
    items = list(message[key])
    base = {k: v for k, v in message.items() if k != key}
    overhead = len(_dumps({**base, key: [], "cont": True}))
    payloads: list[str] = []
    chunk: list[Any] = []
    size = 0
    for item in items:
        item_size = len(_dumps(item)) + (1 if chunk else 0)  # the comma before it
        if chunk and overhead + size + item_size > limit:
            payloads.append(_dumps({**base, key: chunk, **({"cont": True} if payloads else {})}))
            chunk, size, item_size = [], 0, item_size - 1
        if overhead + item_size > limit:
            raise ValueError(f"an item of {item_size} bytes does not fit a NOTIFY payload")
        chunk.append(item)
        size += item_size
    if chunk or not payloads:
        payloads.append(_dumps({**base, key: chunk, **({"cont": True} if payloads else {})}))
    return payloads


async def _dedicated(dsn: str, application: str) -> asyncpg.Connection:
    return await asyncpg.connect(dsn, server_settings={"application_name": application})


class _Backoff:
    def __init__(self) -> None:
        self.delay = MIN_BACKOFF_S

    async def wait(self) -> None:
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, MAX_BACKOFF_S)

    def reset(self) -> None:
        self.delay = MIN_BACKOFF_S


class Publisher:
    """Sends NOTIFYs in publication order from one dedicated connection."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._conn = await _dedicated(self._dsn, NOTIFY_APPLICATION)
        self._task = asyncio.create_task(self._run())

    def publish(self, channel: str, payload: str) -> None:
        self._queue.put_nowait((channel, payload))

    async def drained(self) -> None:
        """Wait until everything published so far has been sent."""
        await self._queue.join()

    async def close(self) -> None:
        """Send what is queued (for a little while), then close."""
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.drained(), CLOSE_DRAIN_S)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._conn is not None:
            await self._conn.close(timeout=1)

    async def _run(self) -> None:
        backoff = _Backoff()
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < MAX_BATCH:
                batch.append(self._queue.get_nowait())
            while True:
                try:
                    await self._send(batch)
                    break
                except CONNECTION_ERRORS as e:
                    log.warning("publishing on PostgreSQL NOTIFY failed (%s); reconnecting", e)
                    await self._drop_connection()
                    await backoff.wait()
            backoff.reset()
            for _ in batch:
                self._queue.task_done()

    async def _send(self, batch: list[tuple[str, str]]) -> None:
        if self._conn is None or self._conn.is_closed():
            self._conn = await _dedicated(self._dsn, NOTIFY_APPLICATION)
        if len(batch) == 1:
            await self._conn.execute(NOTIFY, *batch[0])
        else:  # one round trip, one transaction: delivered together, in order
            await self._conn.executemany(NOTIFY, batch)

    async def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None


class Listener:
    """LISTENs on channels from one dedicated connection, reconnecting when it drops."""

    def __init__(
        self, dsn: str, channels: Sequence[str], on_message: Callable[[str, str], None],
        on_connect: Callable[[bool], Awaitable[None]],
    ) -> None:
        self._dsn = dsn
        self._channels = tuple(channels)
        self._on_message = on_message
        self._on_connect = on_connect
        self._task: asyncio.Task[None] | None = None
        self._conn: asyncpg.Connection | None = None

    async def start(self) -> None:
        """Connect and LISTEN (errors propagate), run `on_connect(False)`, then watch."""
        lost = await self._connect()
        await self._on_connect(False)
        self._task = asyncio.create_task(self._supervise(lost))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._conn is not None:
            await self._conn.close(timeout=1)

    async def _connect(self) -> asyncio.Event:
        conn = await _dedicated(self._dsn, LISTEN_APPLICATION)
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        try:
            for channel in self._channels:
                await conn.add_listener(channel, self._dispatch)
        except BaseException:
            conn.terminate()
            raise
        self._conn = conn
        return lost

    def _dispatch(self, conn: object, pid: int, channel: str, payload: object) -> None:
        try:
            self._on_message(channel, str(payload))
        except Exception:
            log.exception("handling a message on %s failed", channel)

    async def _supervise(self, lost: asyncio.Event) -> None:
        backoff = _Backoff()
        while True:
            await self._watch(lost)
            log.warning("the LISTEN connection to PostgreSQL was lost; reconnecting")
            if self._conn is not None:
                self._conn.terminate()
                self._conn = None
            while True:
                try:
                    lost = await self._connect()
                    break
                except CONNECTION_ERRORS as e:
                    log.warning("LISTEN reconnect failed (%s); retrying", e)
                    await backoff.wait()
            backoff.reset()
            log.warning("LISTEN connection to PostgreSQL re-established")
            try:
                await self._on_connect(True)
            except Exception:
                log.exception("catching up after a LISTEN reconnect failed")

    async def _watch(self, lost: asyncio.Event) -> None:
        """Return once the connection is gone or stops answering."""
        conn = self._conn
        assert conn is not None
        while not lost.is_set() and not conn.is_closed():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), HEALTH_CHECK_S)
                return
            try:
                await asyncio.wait_for(conn.fetchval("SELECT 1"), HEALTH_TIMEOUT_S)
            except CONNECTION_ERRORS:
                return
