"""Schema migrations on an empty database: every file applies once, in order, under a lock;
the recorded version is the newest file's; a newer schema is refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from storage.migrations import MigrationError, available_migrations, check_schema, migrate
from tests.conftest import throwaway_database

SCHEMA = """
SELECT table_name, column_name, data_type FROM information_schema.columns
WHERE table_schema = 'public' ORDER BY table_name, column_name
"""


@pytest.fixture
async def empty_db(postgres_dsn: str) -> AsyncIterator[str]:
    async with throwaway_database(postgres_dsn, template=None) as dsn:
        yield dsn


async def test_migrating_twice_applies_everything_once(empty_db: str) -> None:
    newest = available_migrations()[-1]
    conn = await asyncpg.connect(empty_db)
    try:
        with pytest.raises(MigrationError, match="version 0"):
            await check_schema(conn)
        assert await migrate(conn) == list(range(1, newest.version + 1))
        schema = await conn.fetch(SCHEMA)
        assert await migrate(conn) == []
        assert await conn.fetch(SCHEMA) == schema
        recorded = await conn.fetch("SELECT version, name FROM schema_version ORDER BY version")
        assert [(r["version"], r["name"]) for r in recorded] == [
            (m.version, m.name) for m in available_migrations()
        ]
        await check_schema(conn)  # exactly at the newest version: accepted
    finally:
        await conn.close()


async def test_two_processes_migrating_at_once_apply_each_file_once(empty_db: str) -> None:
    first, second = await asyncpg.connect(empty_db), await asyncpg.connect(empty_db)
    try:
        done = await asyncio.gather(migrate(first), migrate(second))
        assert sorted(done, key=len) == [[], [m.version for m in available_migrations()]]
    finally:
        await first.close()
        await second.close()


async def test_a_schema_newer_than_the_code_is_refused(empty_db: str) -> None:
    future = available_migrations()[-1].version + 1
    conn = await asyncpg.connect(empty_db)
    try:
        await migrate(conn)
        await conn.execute(
            "INSERT INTO schema_version (version, name) VALUES ($1, 'from_the_future')", future
        )
        with pytest.raises(MigrationError, match=f"version {future}, newer"):
            await migrate(conn)
        with pytest.raises(MigrationError, match=f"version {future}, newer"):
            await check_schema(conn)
    finally:
        await conn.close()
