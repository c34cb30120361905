"""The push gateway queue: `push_deliveries`, and the retry state kept on `pushers`.

Rows are queued inside the room engine's transaction, from the notifications it is writing
(`queue_notified`), with one statement for a whole batch of events, so the room writer pays
one round trip however many members and pushers the room has, and none for a batch that
notifies nobody with a pusher (the push service knows who holds one). The sender reads a
pusher's oldest rows with the pusher's data, and deletes those its gateway took with its next
read (or, for a failing pusher, with its retry state).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from storage.push import NotificationGroup

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


# One row per (notification, pusher): the notifications arrive as parallel arrays, one
# element per notified user, so nothing staged in this transaction is read back.
QUEUE_NOTIFIED = """
INSERT INTO push_deliveries (user_id, app_id, pushkey, event_id, room_id, actions)
SELECT p.user_id, p.app_id, p.pushkey, n.event_id, n.room_id, n.actions::jsonb
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[])
    AS n(stream_ordering, event_id, room_id, actions, user_id)
JOIN pushers p ON p.user_id = n.user_id AND p.kind = 'http'
ORDER BY n.stream_ordering, p.user_id, p.app_id, p.pushkey
RETURNING user_id, app_id, pushkey
"""


async def queue_notified(
    conn: asyncpg.Connection, notifications: Sequence[NotificationGroup]
) -> list[PusherKey]:
    """Queue a push of each notification to every http pusher of the users it lists (the
    caller passes only users it knows to hold one: the others cost the join nothing but
    rows); the pushers that got a row (once per row)."""
    rows = [(n, user_id) for n in notifications for user_id in n.user_ids]
    if not rows:
        return []
    queued = await conn.fetch(
        QUEUE_NOTIFIED, [n.stream_ordering for n, _ in rows], [n.event_id for n, _ in rows],
        [n.room_id for n, _ in rows], [n.actions_json for n, _ in rows],
        [user_id for _, user_id in rows],
    )
    return [PusherKey(*r) for r in queued]


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


# Several pushers' queues at once, each up to the limit. The rows delivered since the last
# read go in the same statement: the deletion's snapshot is the read's, so the read leaves
# them out itself. A row names its pusher by its place in the arrays, and the JSON of actions
# and pusher data comes as text: the pushes of one event to many pushers share their actions,
# the rows of one pusher its data, and each is decoded once a read (`get_queued`).
GET_QUEUED = """
WITH delivered AS (DELETE FROM push_deliveries WHERE position = ANY($5::bigint[]))
SELECT k.i, q.*
FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS k(user_id, app_id, pushkey, i)
CROSS JOIN LATERAL (
    SELECT d.position, d.event_id, d.room_id, d.actions::text, d.enqueued_ts, p.data::text,
           p.created_ts
    FROM push_deliveries d JOIN pushers p USING (user_id, app_id, pushkey)
    WHERE d.user_id = k.user_id AND d.app_id = k.app_id AND d.pushkey = k.pushkey
      AND d.position <> ALL($5::bigint[])
    ORDER BY d.position LIMIT $4
) q
ORDER BY q.position
"""


async def get_queued(
    conn: asyncpg.Connection, keys: Sequence[PusherKey], limit: int,
    delivered: Sequence[int] = (),
) -> dict[PusherKey, list[QueuedPush]]:
    """Each pusher's oldest queued rows (up to `limit`), in queue order, once the `delivered`
    positions are deleted: one round trip for all of it. Pushers with none are left out."""
    found: dict[PusherKey, list[QueuedPush]] = {}
    decoded: dict[str | None, Any] = {None: None}
    rows = await conn.fetch(
        GET_QUEUED, [k.user_id for k in keys], [k.app_id for k in keys],
        [k.pushkey for k in keys], limit, list(delivered),
    )
    for i, position, event_id, room_id, actions, enqueued_ts, data, created_ts in rows:
        for text in (actions, data):
            if text not in decoded:
                decoded[text] = json.loads(text)
        found.setdefault(keys[i - 1], []).append(QueuedPush(
            position, event_id, room_id, decoded[actions], enqueued_ts, decoded[data],
            created_ts,
        ))
    return found


DELETE_QUEUED = "DELETE FROM push_deliveries WHERE position = ANY($1::bigint[])"


async def delete_queued(conn: asyncpg.Connection, positions: Sequence[int]) -> None:
    """Forget rows that were delivered (or that never will be)."""
    await conn.execute(DELETE_QUEUED, list(positions))


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
