"""Recording the SQL statements a connection, or a whole pool, runs: for tests that a path
costs the database no more round trips than it should."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import asyncpg
from asyncpg.connection import LoggedQuery

from storage.database import Database


@contextmanager
def _logging(conn: asyncpg.Connection, into: list[LoggedQuery]) -> Iterator[None]:
    def log(query: LoggedQuery) -> None:
        into.append(query)

    conn.add_query_logger(log)
    try:
        yield
    finally:
        conn.remove_query_logger(log)


async def _logged() -> None:
    """asyncpg hands each record to the loggers with `call_soon`: one turn of the loop
    delivers every one scheduled so far."""
    await asyncio.sleep(0)


@asynccontextmanager
async def recording(conn: asyncpg.Connection) -> AsyncIterator[list[LoggedQuery]]:
    """Every statement `conn` runs meanwhile (its text in `.query`, its arguments in
    `.args`)."""
    statements: list[LoggedQuery] = []
    with _logging(conn, statements):
        yield statements
    await _logged()


@asynccontextmanager
async def pool_statements(
    db: Database, task_prefix: str | None = None
) -> AsyncIterator[list[LoggedQuery]]:
    """Every statement run on a connection the database hands out meanwhile (a running
    server's too: its services share this object); with `task_prefix`, only on those taken by
    asyncio tasks whose names start with it."""
    statements: list[LoggedQuery] = []
    handing_out = db.connection

    @asynccontextmanager
    async def connection() -> AsyncIterator[asyncpg.Connection]:
        task = asyncio.current_task()
        async with handing_out() as conn:
            if task_prefix is not None and (
                task is None or not task.get_name().startswith(task_prefix)
            ):
                yield conn
                return
            with _logging(conn, statements):
                yield conn

    db.connection = connection  # type: ignore[method-assign]
    try:
        yield statements
    finally:
        del db.connection
    await _logged()


def counting(statements: list[LoggedQuery], fragment: str) -> int:
    """How many of the statements contain `fragment`."""
    return sum(fragment in s.query for s in statements)
