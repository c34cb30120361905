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
