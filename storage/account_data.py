"""The `account_data` table: per-user global ('' room) and per-room account data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg


@dataclass(frozen=True, slots=True)
class AccountData:
    room_id: str
    type: str
    content: dict[str, Any]
    stream_id: int


UPSERT_ACCOUNT_DATA = """
INSERT INTO account_data (user_id, room_id, type, content, stream_id) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (user_id, room_id, type) DO UPDATE
SET content = EXCLUDED.content, stream_id = EXCLUDED.stream_id
"""


async def upsert_account_data(
    conn: asyncpg.Connection, user_id: str, room_id: str, type: str, content: dict[str, Any],
    stream_id: int,
) -> None:
    await conn.execute(UPSERT_ACCOUNT_DATA, user_id, room_id, type, content, stream_id)


COUNT_IF_NEW = """
SELECT CASE
    WHEN EXISTS (SELECT 1 FROM account_data WHERE user_id = $1 AND room_id = $2 AND type = $3)
    THEN NULL
    ELSE (SELECT count(*) FROM account_data WHERE user_id = $1)
END
"""


async def count_account_data_if_new(
    conn: asyncpg.Connection, user_id: str, room_id: str, type: str
) -> int | None:
    """How many entries the user holds, if (room_id, type) is not one of them yet; None if it
    is (writing it again adds no entry)."""
    count: int | None = await conn.fetchval(COUNT_IF_NEW, user_id, room_id, type)
    return count


GET_ACCOUNT_DATA = """
SELECT content FROM account_data WHERE user_id = $1 AND room_id = $2 AND type = $3
"""


async def get_account_data(
    conn: asyncpg.Connection, user_id: str, room_id: str, type: str
) -> dict[str, Any] | None:
    value: dict[str, Any] | None = await conn.fetchval(GET_ACCOUNT_DATA, user_id, room_id, type)
    return value


GET_CHANGES = """
SELECT room_id, type, content, stream_id FROM account_data
WHERE user_id = $1 AND stream_id > $2 AND stream_id <= $3
ORDER BY stream_id
"""


async def get_account_data_changes(
    conn: asyncpg.Connection, user_id: str, after: int, upto: int
) -> list[AccountData]:
    """Every entry (global and per room) whose last change lies in (after, upto]."""
    rows = await conn.fetch(GET_CHANGES, user_id, after, upto)
    return [AccountData(r["room_id"], r["type"], r["content"], r["stream_id"]) for r in rows]


GET_GLOBAL_OF_USERS = """
SELECT user_id, content FROM account_data WHERE user_id = ANY($1) AND room_id = '' AND type = $2
"""


async def get_global_account_data_of_users(
    conn: asyncpg.Connection, user_ids: Sequence[str], type: str
) -> dict[str, Any]:
    """user -> the content of their global entry of `type`, for those of `user_ids` who set
    one."""
    rows = await conn.fetch(GET_GLOBAL_OF_USERS, list(user_ids), type)
    return {r["user_id"]: r["content"] for r in rows}


GET_ALL_OF_USER = """
SELECT room_id, type, content FROM account_data WHERE user_id = $1 ORDER BY room_id, type
"""


async def get_all_account_data(conn: asyncpg.Connection, user_id: str) -> list[asyncpg.Record]:
    """Every (room_id, type, content) of the user: global ones under room ''."""
    return list(await conn.fetch(GET_ALL_OF_USER, user_id))
