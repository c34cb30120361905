"""Versioned, forward-only schema migrations.

Each `migrations/NNNN_name.sql` file runs once, in its own transaction, under an advisory lock so
that two processes starting together do not race. A database whose schema is newer than this
code is refused: running old code on a newer schema could corrupt it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

log = logging.getLogger(__name__)

# An arbitrary, fixed key for pg_advisory_lock: "moot" in ASCII.
_LOCK_KEY = 0x6D6F6F74

_CREATE_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version    integer PRIMARY KEY,  -- the NNNN of the migration file
    name       text NOT NULL,        -- the rest of its file name
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
_SELECT_APPLIED = "SELECT version FROM schema_version"
_INSERT_APPLIED = "INSERT INTO schema_version (version, name) VALUES ($1, $2)"

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(Exception):
    """The schema cannot be brought to the version this code expects."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def available_migrations() -> list[Migration]:
    found = []
    for entry in resources.files("storage").joinpath("migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationError(f"migration files are not numbered 1..n without gaps: {versions}")
    return found


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Apply every pending migration; return the versions applied now."""
    migrations = available_migrations()
    newest_known = migrations[-1].version if migrations else 0
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(_CREATE_VERSION_TABLE)
        applied = {r["version"] for r in await conn.fetch(_SELECT_APPLIED)}
        if applied and max(applied) > newest_known:
            raise MigrationError(
                f"the database schema is at version {max(applied)}, newer than this Moot "
                f"(which knows versions up to {newest_known}); upgrade Moot before starting it "
                "on this database"
            )
        done = []
        for m in migrations:
            if m.version in applied:
                continue
            log.info("applying migration %04d_%s", m.version, m.name)
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(_INSERT_APPLIED, m.version, m.name)
            done.append(m.version)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)


_VERSION_TABLE_EXISTS = "SELECT to_regclass('schema_version') IS NOT NULL"


async def check_schema(conn: asyncpg.Connection) -> None:
    """Refuse a schema that is not exactly at the newest version this code knows.

    For processes that must not migrate (workers): the main process owns migrations.
    """
    migrations = available_migrations()
    expected = migrations[-1].version if migrations else 0
    found = 0
    if await conn.fetchval(_VERSION_TABLE_EXISTS):
        found = max((r["version"] for r in await conn.fetch(_SELECT_APPLIED)), default=0)
    if found < expected:
        raise MigrationError(
            f"the database schema is at version {found}, but this Moot expects {expected}; "
            "start the main process (without --worker) first: it applies the migrations"
        )
    if found > expected:
        raise MigrationError(
            f"the database schema is at version {found}, newer than this Moot (which knows "
            f"versions up to {expected}); upgrade Moot before starting it on this database"
        )
