"""The push gateway queue: `push_deliveries`, and the retry state kept on `pushers`.

Rows are queued inside the room engine's transaction, from the notifications it has just
written (`queue_notified`), with one statement for a whole batch of events, so the room writer
pays one round trip however many members and pushers the room has. The sender reads a
pusher's oldest rows, joined with the event and the pusher, and deletes each once its gateway
answered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

HTTP = "http"  # the only pusher kind with a queue


@dataclass(frozen=True, slots=True, order=True)
class PusherKey:
    user_id: str
    app_id: str
    pushkey: str


@dataclass(frozen=True, slots=True)
class QueuedPush:
    """One queued notification (or badge update, `event_id` None) with its pusher's data."""

    position: int
    event_id: str | None
    room_id: str | None
    actions: list[Any] | None
    enqueued_ts: int
    pusher_data: dict[str, Any]
    pushkey_ts: int  # ms: when the pusher was registered


@dataclass(frozen=True, slots=True)
class PusherState:
    failures: int
    retry_at: int | None  # ms


# The rows of push_actions just written for these stream positions, one per notified user
# with an http pusher, in stream order.
QUEUE_NOTIFIED = """
INSERT INTO push_deliveries (user_id, app_id, pushkey, event_id, room_id, actions)
SELECT p.user_id, p.app_id, p.pushkey, a.event_id, a.room_id, a.actions
FROM push_actions a CROSS JOIN LATERAL unnest(a.user_ids) AS u(user_id)
JOIN pushers p ON p.user_id = u.user_id AND p.kind = 'http'
WHERE a.stream_ordering = ANY($1::bigint[])
ORDER BY a.stream_ordering, p.user_id, p.app_id, p.pushkey
RETURNING user_id, app_id, pushkey
"""


async def queue_notified(
    conn: asyncpg.Connection, stream_orderings: Sequence[int]
) -> list[PusherKey]:
    """Queue a push of each notification stored for these events to every http pusher of
    the users it notifies; the pushers that got a row (once per row)."""
    if not stream_orderings:
        return []
    rows = await conn.fetch(QUEUE_NOTIFIED, list(stream_orderings))
    return [PusherKey(*r) for r in rows]


# A badge waiting to be sent already carries the count as it will be when it goes out.
QUEUE_BADGES = """
INSERT INTO push_deliveries (user_id, app_id, pushkey)
SELECT p.user_id, p.app_id, p.pushkey FROM pushers p
WHERE p.user_id = $1 AND p.kind = 'http' AND NOT EXISTS (
    SELECT 1 FROM push_deliveries d
    WHERE d.user_id = p.user_id AND d.app_id = p.app_id AND d.pushkey = p.pushkey
      AND d.event_id IS NULL
)
RETURNING user_id, app_id, pushkey
"""


async def queue_badges(conn: asyncpg.Connection, user_id: str) -> list[PusherKey]:
    """Queue a badge-only update to each http pusher of the user that has none waiting."""
    return [PusherKey(*r) for r in await conn.fetch(QUEUE_BADGES, user_id)]


GET_QUEUED = """
SELECT d.position, d.event_id, d.room_id, d.actions, d.enqueued_ts, p.data, p.created_ts
FROM push_deliveries d JOIN pushers p USING (user_id, app_id, pushkey)
WHERE d.user_id = $1 AND d.app_id = $2 AND d.pushkey = $3
ORDER BY d.position LIMIT $4
"""


async def get_queued(conn: asyncpg.Connection, key: PusherKey, limit: int) -> list[QueuedPush]:
    """The pusher's oldest queued rows, in queue order."""
    rows = await conn.fetch(GET_QUEUED, key.user_id, key.app_id, key.pushkey, limit)
    return [QueuedPush(*r) for r in rows]


DELETE_QUEUED = "DELETE FROM push_deliveries WHERE position = $1"


async def delete_queued(conn: asyncpg.Connection, position: int) -> None:
    """Forget a row that was delivered (or that never will be)."""
    await conn.execute(DELETE_QUEUED, position)


IS_QUEUED = "SELECT EXISTS (SELECT 1 FROM push_deliveries WHERE position = $1)"


async def is_queued(conn: asyncpg.Connection, position: int) -> bool:
    """Whether the row is still queued (its pusher was not deleted meanwhile)."""
    queued: bool = await conn.fetchval(IS_QUEUED, position)
    return queued


GET_QUEUED_PUSHERS = """
SELECT DISTINCT d.user_id, d.app_id, d.pushkey, p.failures, p.retry_at
FROM push_deliveries d JOIN pushers p USING (user_id, app_id, pushkey)
"""


async def get_queued_pushers(conn: asyncpg.Connection) -> dict[PusherKey, PusherState]:
    """Every pusher with queued rows, with its stored retry state."""
    return {
        PusherKey(r[0], r[1], r[2]): PusherState(r[3], r[4])
        for r in await conn.fetch(GET_QUEUED_PUSHERS)
    }


SET_PUSHER_STATE = """
UPDATE pushers SET failures = $4, retry_at = $5
WHERE user_id = $1 AND app_id = $2 AND pushkey = $3
"""


async def set_pusher_state(conn: asyncpg.Connection, key: PusherKey, state: PusherState) -> None:
    await conn.execute(
        SET_PUSHER_STATE, key.user_id, key.app_id, key.pushkey, state.failures, state.retry_at
    )


GET_QUEUE_STATS = "SELECT count(*), min(enqueued_ts) FROM push_deliveries"


async def get_queue_stats(conn: asyncpg.Connection) -> tuple[int, int | None]:
    """Rows queued in all, and when the oldest was queued (ms; None when empty)."""
    row = await conn.fetchrow(GET_QUEUE_STATS)
    assert row is not None
    return row[0], row[1]
