"""The `filters` table: sync filters uploaded by users, handed back by a numeric ID."""

from __future__ import annotations

from typing import Any

import asyncpg

INSERT_FILTER = """
INSERT INTO filters (user_id, filter) VALUES ($1, $2) RETURNING filter_id
"""


async def insert_filter(conn: asyncpg.Connection, user_id: str, filter: dict[str, Any]) -> int:
    filter_id: int = await conn.fetchval(INSERT_FILTER, user_id, filter)
    return filter_id


GET_FILTER = "SELECT filter FROM filters WHERE user_id = $1 AND filter_id = $2"


async def get_filter(
    conn: asyncpg.Connection, user_id: str, filter_id: int
) -> dict[str, Any] | None:
    value: dict[str, Any] | None = await conn.fetchval(GET_FILTER, user_id, filter_id)
    return value


COUNT_FILTERS = "SELECT count(*) FROM filters WHERE user_id = $1"


async def count_filters(conn: asyncpg.Connection, user_id: str) -> int:
    count: int = await conn.fetchval(COUNT_FILTERS, user_id)
    return count
