"""Walks over the event DAG that the room engine and the federation reads need: auth chains,
the room's newest position, outliers that later turn out to belong to the timeline.

Events themselves are in `storage/events.py`; this module only follows their edges.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import asyncpg

# Every event reachable from $1 through auth edges, not counting the starting events.
GET_AUTH_CHAIN = """
WITH RECURSIVE chain(event_id) AS (
    SELECT auth_event_id FROM event_auth_edges WHERE event_id = ANY($1)
    UNION
    SELECT a.auth_event_id FROM event_auth_edges a JOIN chain c ON a.event_id = c.event_id
)
SELECT event_id FROM chain
"""


async def get_auth_chain_ids(conn: asyncpg.Connection, event_ids: Iterable[str]) -> set[str]:
    """The auth chain of the given events: their auth events, recursively."""
    rows = await conn.fetch(GET_AUTH_CHAIN, list(set(event_ids)))
    return {r["event_id"] for r in rows}


GET_LATEST_POSITION = "SELECT max(stream_ordering) FROM events WHERE room_id = $1"


async def get_latest_position(conn: asyncpg.Connection, room_id: str) -> int | None:
    """The stream position of the room's newest timeline event (None: it has none)."""
    result: int | None = await conn.fetchval(GET_LATEST_POSITION, room_id)
    return result


DELETE_OUTLIER = "DELETE FROM events WHERE event_id = $1 AND outlier"
DELETE_OUTLIER_EDGES = "DELETE FROM event_edges WHERE event_id = $1"
DELETE_OUTLIER_AUTH_EDGES = "DELETE FROM event_auth_edges WHERE event_id = $1"


async def delete_outlier(conn: asyncpg.Connection, event_id: str) -> bool:
    """Remove an outlier so that it can be stored again as a timeline event (an auth event
    that later arrives as part of the room's history); False when it is not an outlier."""
    status: str = await conn.execute(DELETE_OUTLIER, event_id)
    if not status.endswith(" 1"):
        return False
    await conn.execute(DELETE_OUTLIER_EDGES, event_id)
    await conn.execute(DELETE_OUTLIER_AUTH_EDGES, event_id)
    return True


GET_OUTLIER_IDS = "SELECT event_id FROM events WHERE event_id = ANY($1) AND outlier"


async def get_outlier_ids(conn: asyncpg.Connection, event_ids: Sequence[str]) -> set[str]:
    return {r["event_id"] for r in await conn.fetch(GET_OUTLIER_IDS, list(event_ids))}


# The walk of get_missing_events: breadth-first from the prev events of $2, never entering an
# event of $3 (what the asker has, and the starting events), one below depth $5, a rejected one
# or one of another room. Hops are bounded by the limit $4: the first $4 events of a
# breadth-first walk are at most $4 hops away, so the walk never reads the whole history.
# Of each event reached at several hops, its nearest one counts; the chosen events come back
# oldest first.
GET_MISSING_EVENTS = """
WITH RECURSIVE walk(event_id, depth, hop) AS (
    SELECT e.event_id, e.depth, 1
    FROM event_edges g JOIN events e ON e.event_id = g.prev_event_id
    WHERE g.event_id = ANY($2) AND e.room_id = $1 AND e.rejection_reason IS NULL
      AND e.depth >= $5 AND e.event_id <> ALL($3)
    UNION
    SELECT e.event_id, e.depth, w.hop + 1
    FROM walk w
    JOIN event_edges g ON g.event_id = w.event_id
    JOIN events e ON e.event_id = g.prev_event_id
    WHERE w.hop < $4 AND e.room_id = $1 AND e.rejection_reason IS NULL
      AND e.depth >= $5 AND e.event_id <> ALL($3)
),
nearest AS (
    SELECT DISTINCT ON (event_id) event_id, depth, hop FROM walk ORDER BY event_id, hop
),
chosen AS (
    SELECT event_id, depth FROM nearest ORDER BY hop, depth DESC, event_id LIMIT $4
)
SELECT event_id FROM chosen ORDER BY depth, event_id
"""


async def get_missing_event_ids(
    conn: asyncpg.Connection, room_id: str, earliest: Sequence[str], latest: Sequence[str],
    limit: int, min_depth: int,
) -> list[str]:
    """The events before `latest` that a server holding `earliest` lacks, oldest first:
    at most `limit`, nearest to `latest` first (breadth-first), none below `min_depth`."""
    skip = list({*earliest, *latest})
    rows = await conn.fetch(GET_MISSING_EVENTS, room_id, list(latest), skip, limit, min_depth)
    return [r["event_id"] for r in rows]


# The walk of backfill: the events $2 and their ancestors through prev edges, in room $1 and
# not rejected, the $3 deepest of them newest first. An event among the $3 deepest is fewer
# than $3 hops from a starting event (every event on the way is deeper, so ahead of it),
# which bounds the walk.
GET_BACKFILL = """
WITH RECURSIVE walk(event_id, hop) AS (
    SELECT e.event_id, 0 FROM events e
    WHERE e.event_id = ANY($2) AND e.room_id = $1 AND e.rejection_reason IS NULL
    UNION
    SELECT e.event_id, w.hop + 1
    FROM walk w
    JOIN event_edges g ON g.event_id = w.event_id
    JOIN events e ON e.event_id = g.prev_event_id
    WHERE w.hop + 1 < $3 AND e.room_id = $1 AND e.rejection_reason IS NULL
)
SELECT e.event_id FROM events e
WHERE e.event_id IN (SELECT event_id FROM walk)
ORDER BY e.depth DESC, e.event_id DESC
LIMIT $3
"""


async def get_backfill_ids(
    conn: asyncpg.Connection, room_id: str, event_ids: Sequence[str], limit: int
) -> list[str]:
    """`event_ids` and the events before them, at most `limit`, deepest (newest) first."""
    rows = await conn.fetch(GET_BACKFILL, room_id, list(set(event_ids)), limit)
    return [r["event_id"] for r in rows]


# Whether an event names a prev event this server lacks (or holds only as an outlier).
HAS_MISSING_PREV_EVENTS = """
SELECT EXISTS (
    SELECT 1 FROM event_edges g LEFT JOIN events prev ON prev.event_id = g.prev_event_id
    WHERE g.event_id = $1 AND (prev.event_id IS NULL OR prev.outlier)
)
"""


async def has_missing_prev_events(conn: asyncpg.Connection, event_id: str) -> bool:
    """Whether the room's history has a gap just before the event (jump to date asks other
    servers then)."""
    missing: bool = await conn.fetchval(HAS_MISSING_PREV_EVENTS, event_id)
    return missing


# The prev events the bottom of a room's DAG names but this server lacks (or holds only as
# outliers): where backfill goes on. Only events no deeper than the first of the room's
# stream (our join, or the room's creation here) count, so that a gap after the join is left
# to gap filling. Shallowest first: the oldest edge of what we hold is where a reader of
# /messages going back arrives.
GET_BACKWARD_EXTREMITIES = """
SELECT g.prev_event_id, min(child.depth) AS depth
FROM events child
JOIN event_edges g ON g.event_id = child.event_id
LEFT JOIN events prev ON prev.event_id = g.prev_event_id
WHERE child.room_id = $1 AND NOT child.outlier AND child.rejection_reason IS NULL
  AND child.depth <= (
      SELECT depth FROM events WHERE room_id = $1 AND stream_ordering IS NOT NULL
      ORDER BY stream_ordering LIMIT 1
  )
  AND (prev.event_id IS NULL OR prev.outlier)
GROUP BY g.prev_event_id
ORDER BY depth, g.prev_event_id
LIMIT $2
"""


async def get_backward_extremities(
    conn: asyncpg.Connection, room_id: str, limit: int
) -> list[str]:
    """At most `limit` prev events missing at the bottom of the room, shallowest first."""
    rows = await conn.fetch(GET_BACKWARD_EXTREMITIES, room_id, limit)
    return [r["prev_event_id"] for r in rows]

