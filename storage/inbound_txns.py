"""The `federation_inbound_txns` table: the answers to transactions other servers sent us."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

GET_RESPONSE = """
SELECT response FROM federation_inbound_txns WHERE origin = $1 AND txn_id = $2
"""


async def get_response(
    conn: asyncpg.Connection, origin: str, txn_id: str
) -> dict[str, Any] | None:
    """What we answered to this transaction before (None: it is new)."""
    text = await conn.fetchval(GET_RESPONSE, origin, txn_id)
    if text is None:
        return None
    result: dict[str, Any] = json.loads(text)
    return result


INSERT_RESPONSE = """
INSERT INTO federation_inbound_txns (origin, txn_id, response, received_ts)
VALUES ($1, $2, $3::jsonb, $4) ON CONFLICT (origin, txn_id) DO NOTHING
"""


async def insert_response(
    conn: asyncpg.Connection, origin: str, txn_id: str, response: dict[str, Any], ts: int
) -> None:
    await conn.execute(INSERT_RESPONSE, origin, txn_id, json.dumps(response), ts)


DELETE_OLDER_THAN = "DELETE FROM federation_inbound_txns WHERE received_ts < $1"


async def delete_older_than(conn: asyncpg.Connection, ts: int) -> None:
    """Forget answers older than `ts`: a sender retries a transaction for minutes, not days."""
    await conn.execute(DELETE_OLDER_THAN, ts)
