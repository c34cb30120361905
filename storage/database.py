"""The asyncpg connection pool and the one helper that runs a transaction with retries.

Storage modules never open transactions themselves: they take a connection as their first
argument and the caller composes them, so an event, its edges, its state and its stream
position commit together or not at all.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, TypeVar, cast

import asyncpg

from storage import metrics

log = logging.getLogger(__name__)

T = TypeVar("T")

# Serialization failures and deadlocks are the database asking us to try again.
_RETRYABLE = (asyncpg.SerializationError, asyncpg.DeadlockDetectedError)
_MAX_ATTEMPTS = 5
PING = "SELECT 1"


class DataError(Exception):
    """PostgreSQL refused a value (U+0000 in text or jsonb, a number out of a column's range).

    Raised instead of ``asyncpg.DataError`` so that callers can tell "this input cannot be
    stored" (a client's fault) from a server fault without depending on the driver.
    """


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb columns come back as Python values; text columns holding event JSON stay text.
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool release without asyncpg's reset query (RESET ALL, UNLISTEN *, unlock advisory
    locks, ...): one round trip per released connection that buys nothing here, since no code
    leaves session state behind (the migration lock is released explicitly). asyncpg still
    rolls back a transaction left open before calling this."""


class Database:
    """Owns the pool; hands out connections and retrying transactions."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @classmethod
    async def connect(cls, dsn: str, *, min_size: int = 2, max_size: int = 20) -> Database:
        pool = await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size, init=_init_connection,
            statement_cache_size=1024, reset=_keep_session,
        )
        assert pool is not None
        return cls(pool)

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; a value PostgreSQL refuses surfaces as :class:`DataError`."""
        metrics.POOL_WAITERS.inc()
        start = time.perf_counter()
        try:
            conn_cm = self.pool.acquire()
            conn = await conn_cm.__aenter__()
        finally:
            metrics.POOL_WAITERS.dec()
            metrics.POOL_ACQUIRE_SECONDS.observe(time.perf_counter() - start)
        try:
            yield conn
        except asyncpg.DataError as e:
            raise DataError(str(e)) from e
        finally:
            await conn_cm.__aexit__(None, None, None)

    async def run(
        self, fn: Callable[[asyncpg.Connection], Awaitable[T]], *, name: str = "read"
    ) -> T:
        """Run `fn` on a pooled connection outside any explicit transaction (reads: each
        statement is its own implicit transaction)."""
        start = time.perf_counter()
        try:
            async with self.connection() as conn:
                return await fn(conn)
        finally:
            metrics.TRANSACTION_SECONDS.labels(name).observe(time.perf_counter() - start)

    def on_demand(
        self, limit: asyncio.Semaphore | None = None
    ) -> AbstractAsyncContextManager[asyncpg.Connection]:
        """A stand-in for a pooled connection, taken (under `limit`, if given) only when a
        statement runs on it, and returned at the end of the block: for work that usually
        finds everything in caches which take a connection for their misses, so that a hit
        costs no pool round trip (nor, in a loop of hits, the generator and exit stack of a
        context manager). Statements commit alone, as with `run`."""
        return _OnDemand(self, limit)

    async def transaction(
        self, fn: Callable[[asyncpg.Connection], Awaitable[T]], *, name: str = "txn"
    ) -> T:
        """Run `fn` in one transaction, retrying on serialization failure or deadlock.

        `fn` may run more than once, so it must not have side effects outside the database.
        """
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            start = time.perf_counter()
            try:
                async with self.connection() as conn, conn.transaction():
                    return await fn(conn)
            except _RETRYABLE as e:
                if attempt == _MAX_ATTEMPTS:
                    raise
                log.info("transaction %s retried after %s (attempt %d)", name, e, attempt)
                await asyncio.sleep(0.01 * 2**attempt)
            finally:
                metrics.TRANSACTION_SECONDS.labels(name).observe(time.perf_counter() - start)
        raise AssertionError("unreachable")

    async def answers(self, timeout_s: float) -> bool:
        """Whether the database answers a trivial query through the pool within `timeout_s`
        (GET /health): a pool with no connection to give within that time counts as down too,
        since every request would wait as long."""
        try:
            async with asyncio.timeout(timeout_s), self.connection() as conn:
                await conn.fetchval(PING)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False
        return True

    def pool_stats(self) -> dict[str, int]:
        size = self.pool.get_size()
        return {"size": size, "in_use": size - self.pool.get_idle_size()}


class _OnDemand:
    """The statement methods of a connection, each taking the connection at its first use."""

    _STATEMENTS = frozenset({"execute", "executemany", "fetch", "fetchrow", "fetchval"})

    def __init__(self, db: Database, limit: asyncio.Semaphore | None) -> None:
        self._db = db
        self._limit = limit
        self._stack: AsyncExitStack | None = None  # what the first statement took
        self._conn: asyncpg.Connection | None = None

    async def __aenter__(self) -> asyncpg.Connection:
        return cast(asyncpg.Connection, self)

    async def __aexit__(self, *exc: Any) -> bool | None:
        if self._stack is None:
            return None
        self._conn = None
        stack, self._stack = self._stack, None
        return await stack.__aexit__(*exc)

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None:
            if self._stack is None:
                self._stack = AsyncExitStack()
            if self._limit is not None:
                await self._stack.enter_async_context(self._limit)
            self._conn = await self._stack.enter_async_context(self._db.connection())
        return self._conn

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        if name not in self._STATEMENTS:
            raise AttributeError(f"{name} is not available on an on-demand connection")

        async def statement(*args: Any, **kwargs: Any) -> Any:
            return await getattr(await self._connection(), name)(*args, **kwargs)

        return statement
