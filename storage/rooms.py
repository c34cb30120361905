"""The `rooms`, `room_aliases` and `client_transactions` tables."""

from __future__ import annotations

import asyncpg

INSERT_ROOM = """
INSERT INTO rooms (room_id, room_version, creator, created_ts, is_public)
VALUES ($1, $2, $3, $4, $5)
"""


async def insert_room(
    conn: asyncpg.Connection, room_id: str, room_version: str, creator: str, created_ts: int,
    is_public: bool,
) -> None:
    await conn.execute(INSERT_ROOM, room_id, room_version, creator, created_ts, is_public)


GET_ROOM_VERSION = "SELECT room_version FROM rooms WHERE room_id = $1"


async def get_room_version(conn: asyncpg.Connection, room_id: str) -> str | None:
    result: str | None = await conn.fetchval(GET_ROOM_VERSION, room_id)
    return result


LOCK_ROOM = "SELECT 1 FROM rooms WHERE room_id = $1 FOR UPDATE"


async def lock_room(conn: asyncpg.Connection, room_id: str) -> bool:
    """Serialize writers of one room across processes for the rest of the transaction."""
    return await conn.fetchval(LOCK_ROOM, room_id) is not None


INSERT_ALIAS = """
INSERT INTO room_aliases (alias, room_id, creator) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING
"""


async def insert_alias(conn: asyncpg.Connection, alias: str, room_id: str, creator: str) -> bool:
    """False if the alias is taken."""
    status: str = await conn.execute(INSERT_ALIAS, alias, room_id, creator)
    return status.endswith(" 1")


GET_ALIAS = "SELECT room_id, creator FROM room_aliases WHERE alias = $1"


async def get_alias(conn: asyncpg.Connection, alias: str) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_ALIAS, alias)


GET_ALIASES_FOR_ROOM = "SELECT alias FROM room_aliases WHERE room_id = $1 ORDER BY alias"


async def get_aliases_for_room(conn: asyncpg.Connection, room_id: str) -> list[str]:
    return [r["alias"] for r in await conn.fetch(GET_ALIASES_FOR_ROOM, room_id)]


DELETE_ALIAS = "DELETE FROM room_aliases WHERE alias = $1"


async def delete_alias(conn: asyncpg.Connection, alias: str) -> None:
    await conn.execute(DELETE_ALIAS, alias)


GET_TXN = """
SELECT event_id FROM client_transactions
WHERE user_id = $1 AND device_id = $2 AND txn_id = $3 AND scope = $4
"""
INSERT_TXN = """
INSERT INTO client_transactions (user_id, device_id, txn_id, scope, event_id, created_ts)
VALUES ($1, $2, $3, $4, $5, $6)
"""


async def get_client_txn(
    conn: asyncpg.Connection, user_id: str, device_id: str, txn_id: str, scope: str
) -> str | None:
    result: str | None = await conn.fetchval(GET_TXN, user_id, device_id, txn_id, scope)
    return result


async def insert_client_txn(
    conn: asyncpg.Connection, user_id: str, device_id: str, txn_id: str, scope: str,
    event_id: str, ts: int,
) -> None:
    await conn.execute(INSERT_TXN, user_id, device_id, txn_id, scope, event_id, ts)


GET_TXN_IDS_FOR_EVENTS = """
SELECT event_id, txn_id FROM client_transactions
WHERE user_id = $1 AND device_id = $2 AND event_id = ANY($3)
"""


async def get_txn_ids_for_events(
    conn: asyncpg.Connection, user_id: str, device_id: str, event_ids: list[str]
) -> dict[str, str]:
    """event_id -> the transaction ID this device sent it with (for unsigned.transaction_id)."""
    rows = await conn.fetch(GET_TXN_IDS_FOR_EVENTS, user_id, device_id, event_ids)
    return {r["event_id"]: r["txn_id"] for r in rows}
