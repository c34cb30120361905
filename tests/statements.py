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
def _logging(conn: asyncpg.Connection, into: list[str]) -> Iterator[None]:
    def log(query: LoggedQuery) -> None:
        into.append(query.query)

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
async def recording(conn: asyncpg.Connection) -> AsyncIterator[list[str]]:
    """The text of every statement `conn` runs meanwhile."""
    statements: list[str] = []
    with _logging(conn, statements):
        yield statements
    await _logged()


@asynccontextmanager
async def pool_statements(
    db: Database, task_name: str | None = None
) -> AsyncIterator[list[str]]:
    """Every statement run on a connection the database hands out meanwhile (a running
    server's too: its services share this object); with `task_name`, only on those taken by
    asyncio tasks of that name."""
    statements: list[str] = []
    handing_out = db.connection

    @asynccontextmanager
    async def connection() -> AsyncIterator[asyncpg.Connection]:
        task = asyncio.current_task()
        async with handing_out() as conn:
            if task_name is not None and (task is None or task.get_name() != task_name):
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


def counting(statements: list[str], fragment: str) -> int:
    """How many of the statements contain `fragment`."""
    return sum(fragment in s for s in statements)
