"""The `receipts` table: the latest receipt per (room, type, user, thread)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg


@dataclass(frozen=True, slots=True)
class Receipt:
    room_id: str
    receipt_type: str
    user_id: str
    event_id: str
    data: dict[str, Any]


UPSERT_RECEIPT = """
INSERT INTO receipts (room_id, receipt_type, user_id, thread_id, event_id, data, stream_id)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (room_id, receipt_type, user_id, thread_id) DO UPDATE
SET event_id = EXCLUDED.event_id, data = EXCLUDED.data, stream_id = EXCLUDED.stream_id
"""


async def upsert_receipt(
    conn: asyncpg.Connection, *, room_id: str, receipt_type: str, user_id: str, thread_id: str,
    event_id: str, data: dict[str, Any], stream_id: int,
) -> None:
    """thread_id is '' for an unthreaded receipt."""
    await conn.execute(
        UPSERT_RECEIPT, room_id, receipt_type, user_id, thread_id, event_id, data, stream_id
    )


GET_RECEIPTS = """
SELECT room_id, receipt_type, user_id, event_id, data FROM receipts
WHERE room_id = ANY($1) AND stream_id > $2 AND stream_id <= $3
ORDER BY stream_id
"""


async def get_receipts(
    conn: asyncpg.Connection, room_ids: Sequence[str], after: int, upto: int
) -> list[Receipt]:
    """Receipts in the rooms whose last change lies in (after, upto], oldest first."""
    rows = await conn.fetch(GET_RECEIPTS, list(room_ids), after, upto)
    return [
        Receipt(r["room_id"], r["receipt_type"], r["user_id"], r["event_id"], r["data"])
        for r in rows
    ]
