"""The `to_device_inbox` and `to_device_transactions` tables: send-to-device messages.

A message waits in the inbox of its recipient device until the device acknowledges it by syncing
with a token past its stream position; logging the device out deletes its inbox (foreign key).
Every message of one send shares one stream position, which is unique per device because a send
carries at most one message for each device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg


@dataclass(frozen=True, slots=True)
class Pending:
    """A message in a device's inbox, as /sync delivers it."""

    stream_id: int
    message: dict[str, Any]


INSERT_TRANSACTION = """
INSERT INTO to_device_transactions (user_id, device_id, txn_id, created_ts) VALUES ($1, $2, $3, $4)
ON CONFLICT (user_id, device_id, txn_id) DO NOTHING
"""
DELETE_OLD_TRANSACTIONS = """
DELETE FROM to_device_transactions WHERE user_id = $1 AND device_id = $2 AND created_ts < $3
"""


async def insert_transaction(
    conn: asyncpg.Connection, user_id: str, device_id: str, txn_id: str, now_ms: int,
    keep_ms: int,
) -> bool:
    """Record the sender device's transaction; False if it was seen before (a retry).

    Entries older than `keep_ms` are forgotten on the way: a client retries within minutes.
    """
    await conn.execute(DELETE_OLD_TRANSACTIONS, user_id, device_id, now_ms - keep_ms)
    status: str = await conn.execute(INSERT_TRANSACTION, user_id, device_id, txn_id, now_ms)
    return status.endswith(" 1")


# One row per existing recipient device: a `*` entry expands to every device of its user, an
# explicit device entry wins over `*` for that device, unknown devices match nothing.
INSERT_MESSAGES = """
INSERT INTO to_device_inbox (stream_id, user_id, device_id, message)
SELECT DISTINCT ON (d.user_id, d.device_id) $1::bigint, d.user_id, d.device_id, m.message
FROM unnest($2::text[], $3::text[], $4::jsonb[]) AS m (user_id, device_id, message)
JOIN devices d ON d.user_id = m.user_id AND (m.device_id = '*' OR d.device_id = m.device_id)
ORDER BY d.user_id, d.device_id, m.device_id = '*'
RETURNING user_id
"""


async def insert_messages(
    conn: asyncpg.Connection, stream_id: int, messages: list[tuple[str, str, dict[str, Any]]]
) -> set[str]:
    """Queue (user_id, device_id or `*`, message) rows at `stream_id`; the users reached."""
    rows = await conn.fetch(
        INSERT_MESSAGES, stream_id, [m[0] for m in messages], [m[1] for m in messages],
        [m[2] for m in messages],
    )
    return {r["user_id"] for r in rows}


# Acknowledge (delete) what the client has seen and read what follows, in one round trip. The
# SELECT sees the rows as they were before the DELETE, but only reads positions above it.
ACK_AND_GET_PENDING = """
WITH acked AS (
    DELETE FROM to_device_inbox WHERE user_id = $1 AND device_id = $2 AND stream_id <= $3
)
SELECT stream_id, message FROM to_device_inbox
WHERE user_id = $1 AND device_id = $2 AND stream_id > $3 AND stream_id <= $4
ORDER BY stream_id
LIMIT $5
"""


async def ack_and_get_pending(
    conn: asyncpg.Connection, user_id: str, device_id: str, acked: int, upto: int, limit: int
) -> list[Pending]:
    """Delete messages at positions <= `acked`; return those in (acked, upto], oldest first."""
    rows = await conn.fetch(ACK_AND_GET_PENDING, user_id, device_id, acked, upto, limit)
    return [Pending(r["stream_id"], r["message"]) for r in rows]
