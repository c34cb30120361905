"""The pool wrapper: transactions retry on serialization failure and roll back each failed
attempt, refused values surface as DataError, and the pool's metrics follow what happens."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
import pytest
from prometheus_client import REGISTRY

from storage.database import Database, DataError

Txn = Callable[[asyncpg.Connection], Awaitable[int]]


def failing_first(failures: int, attempts: list[int]) -> Txn:
    """A transaction that writes a row, then fails with a serialization error the first
    `failures` times it runs."""
    async def txn(conn: asyncpg.Connection) -> int:
        attempts.append(len(attempts) + 1)
        await conn.execute("INSERT INTO filters (user_id, filter) VALUES ('@u:x', '{}')")
        if len(attempts) <= failures:
            raise asyncpg.SerializationError("could not serialize access")
        return len(attempts)

    return txn


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def transactions_named(name: str) -> float:
    return sample("moot_db_transaction_duration_seconds_count", {"name": name})


def pool_waiters() -> float:
    return sample("moot_db_pool_waiters")


async def count_rows(db: Database) -> int:
    rows: int = await db.run(lambda conn: conn.fetchval("SELECT count(*) FROM filters"))
    return rows


async def test_a_retried_transaction_keeps_only_its_last_attempt(db: Database) -> None:
    attempts: list[int] = []
    timed = transactions_named("retried")
    assert await db.transaction(failing_first(2, attempts), name="retried") == 3
    assert attempts == [1, 2, 3]
    assert await count_rows(db) == 1
    assert transactions_named("retried") == timed + 3  # every attempt is timed


async def test_a_transaction_gives_up_after_five_attempts(db: Database) -> None:
    attempts: list[int] = []
    with pytest.raises(asyncpg.SerializationError):
        await db.transaction(failing_first(5, attempts))
    assert attempts == [1, 2, 3, 4, 5]
    assert await count_rows(db) == 0


async def test_a_value_postgresql_refuses_is_a_data_error(db: Database) -> None:
    with pytest.raises(DataError):
        await db.run(lambda conn: conn.execute("SELECT $1::text", "nul\x00byte"))
    with pytest.raises(DataError):
        await db.run(lambda conn: conn.execute("SELECT $1::int2", 1 << 20))
    # Other failures are not the input's fault and keep their type.
    with pytest.raises(asyncpg.UndefinedTableError):
        await db.run(lambda conn: conn.execute("SELECT * FROM no_such_table"))


async def test_pool_waiters_count_tasks_queued_for_a_connection(database_url: str) -> None:
    db = await Database.connect(database_url, min_size=1, max_size=1)
    try:
        before = pool_waiters()
        async with db.connection():
            waiter = asyncio.create_task(db.run(lambda conn: conn.fetchval("SELECT 1")))
            await asyncio.sleep(0)  # let it start: it now waits for the only connection
            assert pool_waiters() == before + 1
            assert db.pool_stats() == {"size": 1, "in_use": 1}
        assert await waiter == 1
        assert pool_waiters() == before
    finally:
        await db.close()


async def test_an_on_demand_connection_is_taken_only_by_a_statement(database_url: str) -> None:
    db = await Database.connect(database_url, min_size=1, max_size=1)
    limit = asyncio.Semaphore(1)
    try:
        async with db.connection(), db.on_demand(limit) as conn:
            assert limit.locked() is False  # the pool's only connection is busy: not waited for
        async with db.on_demand(limit) as conn:
            assert await conn.fetchval("SELECT 1") == 1
            assert await conn.fetchval("SELECT 2") == 2  # the same connection, taken once
            assert db.pool_stats() == {"size": 1, "in_use": 1}
            assert limit.locked()
            with pytest.raises(AttributeError):
                conn.transaction()
        assert db.pool_stats() == {"size": 1, "in_use": 0}
        assert not limit.locked()
    finally:
        await db.close()
