"""Deleting a room's old events (a history purge): finding the point to purge up to, the
events before it that may go, and deleting a batch of them with the rows derived from them.

What stays, whatever its age: state events (the room's state, every auth chain and the state
snapshots refer to them; auth events are state events), outliers (held for auth chains), the
room's forward extremities (the next event's prev_events) and the events a receipt points to
(unread counts find a user's read position through them). The DAG edges *to* a deleted event
stay as its children hold them: they tell backfill where the room's history goes on.

Retention also empties what stays of the non-state events before the point, the point's own
included (`get_kept` and `strip_events`): their rows are rewritten to their redacted form and
what was derived from their content (search entries, notifications) is deleted, so that
nothing of what they said is kept although their IDs still hold the DAG together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from storage.events import censor_events

MAX_POSITION = 2**63 - 1

# The newest timeline event before the first one sent at or after $2: a point whose every
# older event was sent before the time, even when senders' clocks disagree.
GET_POINT_BEFORE_TS = """
SELECT event_id, depth, stream_ordering FROM events
WHERE room_id = $1 AND stream_ordering IS NOT NULL
  AND stream_ordering < coalesce((
      SELECT min(stream_ordering) FROM events
      WHERE room_id = $1 AND stream_ordering IS NOT NULL AND origin_server_ts >= $2
  ), $3)
ORDER BY stream_ordering DESC LIMIT 1
"""


@dataclass(frozen=True, slots=True)
class PurgePoint:
    """The event a purge keeps as the room's oldest: the events before it (less deep, and
    no later in the stream) may go."""

    event_id: str
    depth: int
    stream_ordering: int | None  # None: a historical event; only history older than it goes


async def get_point_before_ts(
    conn: asyncpg.Connection, room_id: str, ts: int
) -> PurgePoint | None:
    """The room's newest event of those all sent before `ts` (ms); None when there is none."""
    row = await conn.fetchrow(GET_POINT_BEFORE_TS, room_id, ts, MAX_POSITION)
    return PurgePoint(*row) if row is not None else None


# What a purge must keep although it is old: what receipts and forward extremities name.
GET_PINNED = """
SELECT event_id FROM receipts WHERE room_id = $1
UNION SELECT event_id FROM forward_extremities WHERE room_id = $1
"""

# The next events that may go, oldest first, after the key ($4, $5) of the previous batch
# (so rows kept are read once, not again by every batch: `depth >= $4` bounds the scan of the
# room's depth index). Local senders' events ($7 is ":server_name") only when $6.
GET_PURGEABLE = """
SELECT e.event_id, e.depth, e.stream_ordering FROM events e
WHERE e.room_id = $1 AND e.depth < $2 AND e.depth >= $4
  AND (e.stream_ordering IS NULL OR e.stream_ordering < $3)
  AND (e.depth, e.event_id) > ($4, $5)
  AND e.state_key IS NULL AND NOT e.outlier
  AND ($6 OR right(e.sender, char_length($7)) <> $7)
  AND e.event_id <> ALL($8::text[])
ORDER BY e.depth, e.event_id
LIMIT $9
"""


@dataclass(frozen=True, slots=True)
class Purgeable:
    event_id: str
    depth: int
    stream_ordering: int | None


async def get_purgeable(
    conn: asyncpg.Connection, room_id: str, point: PurgePoint, *, after: tuple[int, str],
    delete_local_events: bool, local_suffix: str, limit: int,
) -> list[Purgeable]:
    """Up to `limit` events of the room before `point` that a purge deletes, oldest first,
    from after the (depth, event ID) key `after`."""
    pinned = [r["event_id"] for r in await conn.fetch(GET_PINNED, room_id)]
    rows = await conn.fetch(
        GET_PURGEABLE, room_id, point.depth, point.stream_ordering, after[0], after[1],
        delete_local_events, local_suffix, pinned, limit,
    )
    return [Purgeable(*r) for r in rows]


DELETE_SEARCH = "DELETE FROM event_search WHERE event_id = ANY($1)"
DELETE_PUSH_ACTIONS = """
DELETE FROM push_actions WHERE room_id = $1 AND stream_ordering = ANY($2) RETURNING user_ids
"""
DELETE_REDACTIONS = "DELETE FROM event_redactions WHERE redaction_id = ANY($1)"
DELETE_EDGES = "DELETE FROM event_edges WHERE event_id = ANY($1)"
DELETE_AUTH_EDGES = "DELETE FROM event_auth_edges WHERE event_id = ANY($1)"
# The federation outbox and the appservice queues let go of them by ON DELETE CASCADE.
DELETE_EVENTS = "DELETE FROM events WHERE room_id = $1 AND event_id = ANY($2) RETURNING json"


@dataclass(frozen=True, slots=True)
class Deleted:
    notified: set[str]  # the users whose notifications were deleted
    json: list[str]  # the deleted events as they were stored (for the media they referred to)


async def delete_events(
    conn: asyncpg.Connection, room_id: str, events: Sequence[Purgeable]
) -> Deleted:
    """Delete the events with their search entries, notifications, the redactions they made
    and their own DAG edges."""
    ids = [e.event_id for e in events]
    positions = [e.stream_ordering for e in events if e.stream_ordering is not None]
    await conn.execute(DELETE_SEARCH, ids)
    notified: set[str] = set()
    for row in await conn.fetch(DELETE_PUSH_ACTIONS, room_id, positions):
        notified.update(row["user_ids"])
    await conn.execute(DELETE_REDACTIONS, ids)
    await conn.execute(DELETE_EDGES, ids)
    await conn.execute(DELETE_AUTH_EDGES, ids)
    rows = await conn.fetch(DELETE_EVENTS, room_id, ids)
    return Deleted(notified, [r["json"] for r in rows])


# The non-state events a purge up to the point left (pins, outliers) and the point itself,
# after the (depth, event ID) key ($5, $6) of the previous batch.
GET_KEPT = """
SELECT e.event_id, e.depth, e.stream_ordering, e.json FROM events e
WHERE e.room_id = $1 AND e.state_key IS NULL AND e.depth >= $5
  AND (e.event_id = $4 OR (
      e.depth < $2 AND (e.stream_ordering IS NULL OR e.stream_ordering < $3)))
  AND (e.depth, e.event_id) > ($5, $6)
ORDER BY e.depth, e.event_id
LIMIT $7
"""


@dataclass(frozen=True, slots=True)
class Kept:
    event: Purgeable
    json: str  # as stored


async def get_kept(
    conn: asyncpg.Connection, room_id: str, point: PurgePoint, *, after: tuple[int, str],
    limit: int,
) -> list[Kept]:
    """Up to `limit` of the non-state events up to `point` (itself included) still stored,
    oldest first, from after the key `after`."""
    rows = await conn.fetch(
        GET_KEPT, room_id, point.depth, point.stream_ordering, point.event_id,
        after[0], after[1], limit,
    )
    return [Kept(Purgeable(r[0], r[1], r[2]), r[3]) for r in rows]


async def strip_events(
    conn: asyncpg.Connection, room_id: str, stripped: Sequence[tuple[Purgeable, str]],
) -> set[str]:
    """Rewrite the events' rows to the JSON given (their content-less form) and delete their
    search entries and notifications; returns the users whose notifications were deleted."""
    if not stripped:
        return set()
    await censor_events(conn, [(e.event_id, room_id, j) for e, j in stripped])
    ids = [e.event_id for e, _ in stripped]
    await conn.execute(DELETE_SEARCH, ids)
    positions = [e.stream_ordering for e, _ in stripped if e.stream_ordering is not None]
    notified: set[str] = set()
    for row in await conn.fetch(DELETE_PUSH_ACTIONS, room_id, positions):
        notified.update(row["user_ids"])
    return notified
