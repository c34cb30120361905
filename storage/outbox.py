"""The outbound federation queue: `federation_outbox_pdus`, `federation_outbox_edus` and
`federation_destinations`.

Rows are queued inside the caller's transaction (the room engine's, for PDUs), so an event and
the promise to send it commit together; the sender deletes them in the transaction that records
a delivery. PDUs are queued by event ID only and joined with `events.json` when read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

# The spec's limits on one transaction (server-server-api.md "Transactions").
MAX_PDUS = 50
MAX_EDUS = 100


@dataclass(frozen=True, slots=True)
class QueuedPdu:
    position: int
    event_id: str
    json: str  # events.json: the signed PDU as canonical JSON
    enqueued_ts: int


@dataclass(frozen=True, slots=True)
class QueuedEdu:
    position: int
    edu_type: str
    content: Any
    enqueued_ts: int


@dataclass(frozen=True, slots=True)
class Batch:
    """The oldest queued rows of one destination, in queue order."""

    pdus: list[QueuedPdu]
    edus: list[QueuedEdu]

    def __bool__(self) -> bool:
        return bool(self.pdus or self.edus)


@dataclass(frozen=True, slots=True)
class DestinationState:
    failures: int  # consecutive failures; 0 when healthy
    retry_at: int | None  # ms
    last_success_ts: int | None  # ms
    failed_ts: int | None = None  # ms: when the failure this state records happened


INSERT_PDUS = """
INSERT INTO federation_outbox_pdus (destination, event_id)
SELECT * FROM unnest($1::text[], $2::text[])
"""


async def insert_pdus(conn: asyncpg.Connection, rows: Sequence[tuple[str, str]]) -> None:
    """Queue (destination, event_id) pairs, in the order given; one statement for them all."""
    if rows:
        await conn.execute(INSERT_PDUS, [d for d, _ in rows], [e for _, e in rows])


INSERT_EDUS = """
INSERT INTO federation_outbox_edus (destination, edu_type, content)
SELECT d, $2, $3 FROM unnest($1::text[]) AS d
"""


async def insert_edus(
    conn: asyncpg.Connection, destinations: Sequence[str], edu_type: str, content: Any
) -> None:
    """Queue one EDU for each of ``destinations``."""
    if destinations:
        await conn.execute(INSERT_EDUS, list(destinations), edu_type, content)


GET_PDUS = """
SELECT o.position, o.event_id, e.json, o.enqueued_ts
FROM federation_outbox_pdus o JOIN events e USING (event_id)
WHERE o.destination = $1 ORDER BY o.position LIMIT $2
"""
GET_EDUS = """
SELECT position, edu_type, content, enqueued_ts FROM federation_outbox_edus
WHERE destination = $1 ORDER BY position LIMIT $2
"""


async def get_batch(
    conn: asyncpg.Connection, destination: str, max_pdus: int = MAX_PDUS,
    max_edus: int = MAX_EDUS,
) -> Batch:
    """The next rows to send to ``destination``: the oldest PDUs and the oldest EDUs."""
    pdus = [QueuedPdu(*r) for r in await conn.fetch(GET_PDUS, destination, max_pdus)]
    edus = [QueuedEdu(*r) for r in await conn.fetch(GET_EDUS, destination, max_edus)]
    return Batch(pdus, edus)


DELETE_PDUS = "DELETE FROM federation_outbox_pdus WHERE destination = $1 AND position = ANY($2)"
DELETE_EDUS = "DELETE FROM federation_outbox_edus WHERE destination = $1 AND position = ANY($2)"


async def delete_batch(conn: asyncpg.Connection, destination: str, batch: Batch) -> None:
    """Forget the rows of a batch that was delivered (or that will never be)."""
    if batch.pdus:
        await conn.execute(DELETE_PDUS, destination, [p.position for p in batch.pdus])
    if batch.edus:
        await conn.execute(DELETE_EDUS, destination, [e.position for e in batch.edus])


GET_QUEUE_DEPTHS = """
SELECT destination, sum(n)::bigint FROM (
    SELECT destination, count(*) AS n FROM federation_outbox_pdus GROUP BY destination
    UNION ALL
    SELECT destination, count(*) AS n FROM federation_outbox_edus GROUP BY destination
) q GROUP BY destination
"""


async def get_queue_depths(conn: asyncpg.Connection) -> dict[str, int]:
    """Queued PDUs plus EDUs per destination; only destinations with something queued."""
    return {r[0]: r[1] for r in await conn.fetch(GET_QUEUE_DEPTHS)}


GET_OLDEST_QUEUED = """
SELECT destination, min(enqueued_ts) FROM (
    SELECT destination, min(enqueued_ts) AS enqueued_ts FROM federation_outbox_pdus
    GROUP BY destination
    UNION ALL
    SELECT destination, min(enqueued_ts) FROM federation_outbox_edus GROUP BY destination
) q GROUP BY destination
"""


async def get_oldest_queued(conn: asyncpg.Connection) -> dict[str, int]:
    """When each destination's oldest queued PDU or EDU was queued (ms); only destinations
    with something queued."""
    return {r[0]: r[1] for r in await conn.fetch(GET_OLDEST_QUEUED)}


GET_DESTINATION_STATES = """
SELECT destination, failures, retry_at, last_success_ts FROM federation_destinations
WHERE destination = ANY($1)
"""


async def get_destination_states(
    conn: asyncpg.Connection, destinations: Sequence[str]
) -> dict[str, DestinationState]:
    """The stored retry state of each destination that has one."""
    rows = await conn.fetch(GET_DESTINATION_STATES, list(destinations))
    return {r[0]: DestinationState(r[1], r[2], r[3]) for r in rows}


# A run of failures keeps the time it began; a healthy state (no failures) forgets both times.
UPSERT_DESTINATION_STATE = """
INSERT INTO federation_destinations
    (destination, failures, retry_at, last_success_ts, failure_ts, last_failure_ts)
VALUES ($1, $2, $3, $4, $5, $5)
ON CONFLICT (destination) DO UPDATE SET
    failures = EXCLUDED.failures, retry_at = EXCLUDED.retry_at,
    last_success_ts = coalesce(EXCLUDED.last_success_ts, federation_destinations.last_success_ts),
    failure_ts = CASE WHEN EXCLUDED.failures = 0 THEN NULL
                      ELSE coalesce(federation_destinations.failure_ts, EXCLUDED.failure_ts) END,
    last_failure_ts = CASE WHEN EXCLUDED.failures = 0 THEN NULL
                           ELSE coalesce(EXCLUDED.last_failure_ts,
                                         federation_destinations.last_failure_ts) END
"""


async def upsert_destination_state(
    conn: asyncpg.Connection, destination: str, state: DestinationState
) -> None:
    """Store a destination's retry state; a None ``last_success_ts`` keeps the stored one."""
    await conn.execute(
        UPSERT_DESTINATION_STATE, destination, state.failures, state.retry_at,
        state.last_success_ts, state.failed_ts,
    )


RECORD_SENT_PDUS = """
UPDATE federation_destinations SET last_sent_stream_ordering = GREATEST(
    last_sent_stream_ordering,
    (SELECT max(stream_ordering) FROM events WHERE event_id = ANY($2::text[])))
WHERE destination = $1
"""


async def record_sent_pdus(
    conn: asyncpg.Connection, destination: str, event_ids: Sequence[str]
) -> None:
    """Note the latest stream position among PDUs the destination accepted (its state row
    exists: the caller stored it first)."""
    await conn.execute(RECORD_SENT_PDUS, destination, list(event_ids))


DELETE_DESTINATION_PDUS = "DELETE FROM federation_outbox_pdus WHERE destination = $1"
DELETE_DESTINATION_EDUS = "DELETE FROM federation_outbox_edus WHERE destination = $1"


async def delete_destination_queue(conn: asyncpg.Connection, destination: str) -> int:
    """Drop everything queued for ``destination`` (it expired); how many rows that was."""
    dropped = 0
    for statement in (DELETE_DESTINATION_PDUS, DELETE_DESTINATION_EDUS):
        status = await conn.execute(statement, destination)  # "DELETE <rows>"
        dropped += int(status.split()[-1])
    return dropped


ADVANCE_POSITIONS = """
SELECT setval(seq, GREATEST($2, coalesce(pg_sequence_last_value(seq), 0)))
FROM (SELECT pg_get_serial_sequence($1, 'position')::regclass AS seq) AS s
"""


async def advance_positions(conn: asyncpg.Connection, at_least: int) -> int:
    """Make the next queued PDU and EDU take a position above `at_least` (never lower than
    one already taken); return the lowest position they now continue above. After a restore
    from a backup: the positions, and with them the transaction IDs, that the lost server used
    since the backup must not come again, or peers that remember those IDs would drop the new
    transactions as repeats."""
    tables = ("federation_outbox_pdus", "federation_outbox_edus")
    floors: list[int] = [
        await conn.fetchval(ADVANCE_POSITIONS, table, at_least) for table in tables
    ]
    return min(floors)
