"""The outbound application-service queue: `appservice_queue`, `appservice_txns` and
`appservice_states`.

Events are queued inside the room engine's transaction (one statement for a batch's rows), so
an event and the promise to pass it on commit together. A transaction is claimed from the
oldest rows in one database transaction that numbers it, stores its body and deletes the rows;
it stays stored until the appservice acknowledges it, so a retry, also after a restart, repeats
the same txnId with the same body (application-service-api "Pushing events": a homeserver
MUST NOT alter what it sends under one transaction ID).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg


@dataclass(frozen=True, slots=True)
class QueuedItem:
    position: int
    event_id: str | None  # a room event, or
    ephemeral: dict[str, Any] | None  # an ephemeral event, sent as is
    enqueued_ts: int  # ms


@dataclass(frozen=True, slots=True)
class PendingTxn:
    """A transaction claimed and not yet acknowledged."""

    txn_id: int
    body: str  # the JSON body, as sent
    events: int
    ephemeral: int
    oldest_ts: int  # ms: when its oldest item was queued


@dataclass(frozen=True, slots=True)
class DeliveryState:
    failures: int  # consecutive failures; 0 when healthy
    retry_at: int | None  # ms; None when healthy


@dataclass(frozen=True, slots=True)
class Backlog:
    """What one appservice is owed: queued rows plus the items of its pending transaction."""

    items: int
    oldest_ts: int  # ms


INSERT_EVENTS = """
INSERT INTO appservice_queue (appservice_id, event_id)
SELECT * FROM unnest($1::text[], $2::text[])
"""


async def insert_events(conn: asyncpg.Connection, rows: Sequence[tuple[str, str]]) -> None:
    """Queue (appservice_id, event_id) pairs in the order given; one statement for them all."""
    if rows:
        await conn.execute(INSERT_EVENTS, [a for a, _ in rows], [e for _, e in rows])


INSERT_EPHEMERAL = """
INSERT INTO appservice_queue (appservice_id, ephemeral)
SELECT a, $2 FROM unnest($1::text[]) AS a
"""


async def insert_ephemeral(
    conn: asyncpg.Connection, appservice_ids: Sequence[str], event: dict[str, Any]
) -> None:
    """Queue one ephemeral event for each of ``appservice_ids``."""
    if appservice_ids:
        await conn.execute(INSERT_EPHEMERAL, list(appservice_ids), event)


GET_QUEUED = """
SELECT position, event_id, ephemeral, enqueued_ts FROM appservice_queue
WHERE appservice_id = $1 ORDER BY position LIMIT $2
"""


async def get_queued(conn: asyncpg.Connection, appservice_id: str, limit: int) -> list[QueuedItem]:
    """The oldest queued rows of an appservice, in queue order."""
    return [QueuedItem(*r) for r in await conn.fetch(GET_QUEUED, appservice_id, limit)]


GET_PENDING_TXN = """
SELECT txn_id, body, events, ephemeral, oldest_ts FROM appservice_txns WHERE appservice_id = $1
"""


async def get_pending_txn(conn: asyncpg.Connection, appservice_id: str) -> PendingTxn | None:
    row = await conn.fetchrow(GET_PENDING_TXN, appservice_id)
    return None if row is None else PendingTxn(*row)


NEXT_TXN_ID = """
INSERT INTO appservice_states (appservice_id, last_txn_id) VALUES ($1, 1)
ON CONFLICT (appservice_id) DO UPDATE SET last_txn_id = appservice_states.last_txn_id + 1
RETURNING last_txn_id
"""
# The rows taken by position, never "up to" one: a row with a smaller position whose
# transaction committed after the rows were read is in no body, and must stay queued.
DELETE_QUEUED = """
DELETE FROM appservice_queue WHERE appservice_id = $1 AND position = ANY($2::bigint[])
"""
INSERT_TXN = """
INSERT INTO appservice_txns (appservice_id, txn_id, body, events, ephemeral, oldest_ts)
VALUES ($1, $2, $3, $4, $5, $6)
"""


async def claim_txn(
    conn: asyncpg.Connection, appservice_id: str, positions: Sequence[int], body: str, *,
    events: int, ephemeral: int, oldest_ts: int,
) -> PendingTxn:
    """Number a transaction, store it and take its rows (those at ``positions``) off the
    queue. The caller's transaction makes the three one step."""
    txn_id: int = await conn.fetchval(NEXT_TXN_ID, appservice_id)
    await conn.execute(DELETE_QUEUED, appservice_id, list(positions))
    await conn.execute(INSERT_TXN, appservice_id, txn_id, body, events, ephemeral, oldest_ts)
    return PendingTxn(txn_id, body, events, ephemeral, oldest_ts)


GET_TXN_BODIES = "SELECT appservice_id, txn_id, body FROM appservice_txns"
SET_TXN_BODY = """
UPDATE appservice_txns SET body = $3, events = $4 WHERE appservice_id = $1 AND txn_id = $2
"""


async def get_txn_bodies(conn: asyncpg.Connection) -> list[tuple[str, int, str]]:
    """(appservice, txnId, body) of every unacknowledged transaction: one per appservice at
    most, so a handful."""
    return [(r["appservice_id"], r["txn_id"], r["body"]) for r in await conn.fetch(GET_TXN_BODIES)]


async def set_txn_body(
    conn: asyncpg.Connection, appservice_id: str, txn_id: int, body: str, events: int
) -> None:
    await conn.execute(SET_TXN_BODY, appservice_id, txn_id, body, events)


DELETE_TXN = "DELETE FROM appservice_txns WHERE appservice_id = $1 AND txn_id = $2"
RECORD_SUCCESS = """
UPDATE appservice_states SET failures = 0, retry_at = NULL, last_success_ts = $2
WHERE appservice_id = $1
"""


async def complete_txn(
    conn: asyncpg.Connection, appservice_id: str, txn_id: int, now_ms: int
) -> None:
    """The appservice acknowledged ``txn_id``: forget it and reset the backoff."""
    await conn.execute(DELETE_TXN, appservice_id, txn_id)
    await conn.execute(RECORD_SUCCESS, appservice_id, now_ms)


SET_DELIVERY_STATE = """
UPDATE appservice_states SET failures = $2, retry_at = $3 WHERE appservice_id = $1
"""


async def set_delivery_state(
    conn: asyncpg.Connection, appservice_id: str, state: DeliveryState
) -> None:
    """Store the backoff (the row exists: it was made when the failed transaction was
    numbered)."""
    await conn.execute(SET_DELIVERY_STATE, appservice_id, state.failures, state.retry_at)


GET_DELIVERY_STATES = "SELECT appservice_id, failures, retry_at FROM appservice_states"


async def get_delivery_states(conn: asyncpg.Connection) -> dict[str, DeliveryState]:
    return {r[0]: DeliveryState(r[1], r[2]) for r in await conn.fetch(GET_DELIVERY_STATES)}


GET_BACKLOGS = """
SELECT appservice_id, sum(n)::bigint, min(oldest) FROM (
    SELECT appservice_id, count(*) AS n, min(enqueued_ts) AS oldest FROM appservice_queue
    GROUP BY appservice_id
    UNION ALL
    SELECT appservice_id, events + ephemeral, oldest_ts FROM appservice_txns
) q GROUP BY appservice_id
"""


async def get_backlogs(conn: asyncpg.Connection) -> dict[str, Backlog]:
    """Per appservice with anything owed: how many items and since when."""
    return {r[0]: Backlog(r[1], r[2]) for r in await conn.fetch(GET_BACKLOGS)}
