"""A database stopped just before one migration, for the tests of what that migration does to
rows written under the schema before it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from storage.migrations import available_migrations
from tests.conftest import throwaway_database


@asynccontextmanager
async def just_before(postgres_dsn: str, version: int) -> AsyncIterator[asyncpg.Connection]:
    """A connection to a new database with the migrations before `version` applied."""
    async with throwaway_database(postgres_dsn, template=None) as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            for migration in available_migrations()[:version - 1]:
                await conn.execute(migration.sql)
            yield conn
        finally:
            await conn.close()


async def apply(conn: asyncpg.Connection, version: int) -> None:
    """Run migration `version` (migrations are numbered 1..n without gaps)."""
    await conn.execute(available_migrations()[version - 1].sql)
