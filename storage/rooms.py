"""The `rooms`, `room_aliases` and `client_transactions` tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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


INSERT_ROOM_IF_ABSENT = INSERT_ROOM + " ON CONFLICT (room_id) DO NOTHING"


async def insert_room_if_absent(
    conn: asyncpg.Connection, room_id: str, room_version: str, creator: str, created_ts: int,
    is_public: bool,
) -> None:
    """A room that lives on other servers, recorded when we join it (maybe not the first
    time: a room we left and join again)."""
    await conn.execute(
        INSERT_ROOM_IF_ABSENT, room_id, room_version, creator, created_ts, is_public
    )


SET_ROOM_VERSION = "UPDATE rooms SET room_version = $2 WHERE room_id = $1"


async def set_room_version(conn: asyncpg.Connection, room_id: str, room_version: str) -> None:
    """Correct the version of a room known only from an invite (whose sender named it) once
    its create event says which it is."""
    await conn.execute(SET_ROOM_VERSION, room_id, room_version)


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


COUNT_ALIASES_BY_CREATOR = "SELECT count(*) FROM room_aliases WHERE creator = $1"


async def count_aliases_by_creator(conn: asyncpg.Connection, creator: str) -> int:
    count: int = await conn.fetchval(COUNT_ALIASES_BY_CREATOR, creator)
    return count


MOVE_ALIASES = "UPDATE room_aliases SET room_id = $2 WHERE room_id = $1 RETURNING alias"


async def move_aliases(conn: asyncpg.Connection, old_room_id: str, new_room_id: str) -> list[str]:
    """Point every alias of a room at another (a room upgrade); the aliases moved."""
    return sorted(r["alias"] for r in await conn.fetch(MOVE_ALIASES, old_room_id, new_room_id))


DELETE_ALIAS = "DELETE FROM room_aliases WHERE alias = $1"


async def delete_alias(conn: asyncpg.Connection, alias: str) -> None:
    await conn.execute(DELETE_ALIAS, alias)


@dataclass(frozen=True, slots=True)
class ClientTxnKey:
    """A client's idempotency key: the same (user, device, txn_id) for the same request
    (`scope`, e.g. "send/<room>/<type>") yields the same event."""

    user_id: str
    device_id: str
    txn_id: str
    scope: str


GET_TXNS = """
SELECT t.user_id, t.device_id, t.txn_id, t.scope, t.event_id
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS k(u, d, x, s)
JOIN client_transactions t
  ON t.user_id = k.u AND t.device_id = k.d AND t.txn_id = k.x AND t.scope = k.s
"""
INSERT_TXNS = """
INSERT INTO client_transactions (user_id, device_id, txn_id, scope, event_id, created_ts)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[])
"""


def _key_columns(keys: Sequence[ClientTxnKey]) -> list[list[str]]:
    return [
        [k.user_id for k in keys], [k.device_id for k in keys], [k.txn_id for k in keys],
        [k.scope for k in keys],
    ]


async def get_client_txns(
    conn: asyncpg.Connection, keys: Sequence[ClientTxnKey]
) -> dict[ClientTxnKey, str]:
    """The events earlier requests with these keys created."""
    if not keys:
        return {}
    rows = await conn.fetch(GET_TXNS, *_key_columns(keys))
    return {ClientTxnKey(r[0], r[1], r[2], r[3]): r["event_id"] for r in rows}


async def insert_client_txns(
    conn: asyncpg.Connection, txns: Sequence[tuple[ClientTxnKey, str]], ts: int
) -> None:
    """Remember which event each request created."""
    if not txns:
        return
    keys = [k for k, _ in txns]
    await conn.execute(
        INSERT_TXNS, *_key_columns(keys), [e for _, e in txns], [ts] * len(txns)
    )


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
