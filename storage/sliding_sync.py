"""The `sliding_sync_connections` and `sliding_sync_positions` tables (MSC4186 connections),
and the per-room reads a sliding sync list is sorted and filtered by.

A connection is one device's `conn_id`; a position is the immutable record of what one
response had sent on it, which the `pos` of the next request names. Replacing or dropping a
connection deletes its positions (foreign key), so a `pos` of it is no longer found.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class Position:
    position_id: int
    connection_id: int
    user_id: str
    device_id: str
    conn_id: str
    secret: str
    last_used_ts: int
    state: str  # JSON


START_CONNECTION = """
WITH replaced AS (
    DELETE FROM sliding_sync_connections WHERE user_id = $1 AND device_id = $2 AND conn_id = $3
    RETURNING id
), oldest AS (
    DELETE FROM sliding_sync_connections WHERE id IN (
        SELECT id FROM sliding_sync_connections
        WHERE user_id = $1 AND device_id = $2 AND conn_id <> $3
        ORDER BY id DESC OFFSET $7 - 1
    ) RETURNING id
), created AS (
    INSERT INTO sliding_sync_connections
        (user_id, device_id, conn_id, secret, created_ts, last_used_ts)
    VALUES ($1, $2, $3, $4, $5, $5) RETURNING id
), first_position AS (
    INSERT INTO sliding_sync_positions (connection_id, state) SELECT id, $6 FROM created
    RETURNING id, connection_id
)
SELECT connection_id, id AS position_id,
       ARRAY(SELECT id FROM replaced UNION ALL SELECT id FROM oldest) AS dropped,
       set_config('synchronous_commit', 'off', true) AS commit_mode
FROM first_position
"""


@dataclass(frozen=True, slots=True)
class Started:
    connection_id: int
    position_id: int
    dropped: list[int]  # connections deleted: the one replaced, the device's oldest


async def start_connection(
    conn: asyncpg.Connection, user_id: str, device_id: str, conn_id: str, secret: str,
    now_ms: int, state: str, keep_per_device: int,
) -> Started:
    """A new connection for (user, device, conn_id) in place of any earlier one, at its first
    position; the device keeps its `keep_per_device` newest connections. One statement.

    Its commit does not wait for the WAL to reach the disk (`synchronous_commit` off for this
    statement's transaction only), which was a good part of a first response's time. What
    that risks: if PostgreSQL itself crashes within the WAL writer's next few hundred ms (a
    restart of Moot loses nothing), the new connection is gone and its pos is unknown
    (M_UNKNOWN_POS: the client starts over, as the issue allows), or the connection it
    replaced is back, whose own positions are still right. Never a wrong delta: a pos is
    sealed with its connection's own random secret. Later positions (`insert_position`) keep
    the synchronous commit: one of them lost and its ID given again to the same connection
    would turn an old pos into the wrong state."""
    row = await conn.fetchrow(
        START_CONNECTION, user_id, device_id, conn_id, secret, now_ms, state, keep_per_device
    )
    return Started(row["connection_id"], row["position_id"], list(row["dropped"]))


INSERT_POSITION = """
WITH older AS (
    DELETE FROM sliding_sync_positions WHERE connection_id = $1 AND id < $3
)
INSERT INTO sliding_sync_positions (connection_id, state) VALUES ($1, $2) RETURNING id
"""


async def insert_position(
    conn: asyncpg.Connection, connection_id: int, state: str, keep_from: int
) -> int:
    """Record a new position; positions of the connection older than `keep_from` (the one
    the client came from, which a retried request may name again) are deleted."""
    position_id: int = await conn.fetchval(INSERT_POSITION, connection_id, state, keep_from)
    return position_id


GET_POSITION = """
SELECT p.id, p.connection_id, c.user_id, c.device_id, c.conn_id, c.secret, c.last_used_ts,
       p.state
FROM sliding_sync_positions p JOIN sliding_sync_connections c ON c.id = p.connection_id
WHERE p.id = $1
"""


async def get_position(conn: asyncpg.Connection, position_id: int) -> Position | None:
    row = await conn.fetchrow(GET_POSITION, position_id)
    return Position(*row) if row is not None else None


GET_LAST_USED = "SELECT last_used_ts FROM sliding_sync_connections WHERE id = $1"


async def get_last_used(conn: asyncpg.Connection, connection_id: int) -> int | None:
    """When the connection was last used (None: it no longer exists)."""
    found: int | None = await conn.fetchval(GET_LAST_USED, connection_id)
    return found


SET_LAST_USED = "UPDATE sliding_sync_connections SET last_used_ts = $2 WHERE id = $1"


async def set_last_used(conn: asyncpg.Connection, connection_id: int, now_ms: int) -> None:
    await conn.execute(SET_LAST_USED, connection_id, now_ms)


DELETE_CONNECTION_BY_ID = "DELETE FROM sliding_sync_connections WHERE id = $1"


async def delete_connection(conn: asyncpg.Connection, connection_id: int) -> None:
    await conn.execute(DELETE_CONNECTION_BY_ID, connection_id)


# The predicate of the `events_bump_stamp` index (migration 0018), which the query must repeat
# for the planner to use it.
GET_BUMP_STAMPS = """
SELECT r.room_id, (
    SELECT e.stream_ordering FROM events e
    WHERE e.room_id = r.room_id AND e.stream_ordering <= r.upto AND e.stream_ordering > $3
      AND e.type IN ('m.room.create', 'm.room.message', 'm.room.encrypted', 'm.sticker',
                     'm.call.invite', 'm.poll.start', 'm.beacon_info')
      AND e.stream_ordering IS NOT NULL AND e.rejection_reason IS NULL AND NOT e.soft_failed
    ORDER BY e.stream_ordering DESC LIMIT 1
) AS bump_stamp
FROM unnest($1::text[], $2::bigint[]) AS r(room_id, upto)
"""


async def get_bump_stamps(
    conn: asyncpg.Connection, rooms: Sequence[tuple[str, int]], after: int = 0
) -> dict[str, int | None]:
    """room -> the position of its newest bumping event after `after` and at or before the
    room's bound (None when it has none: nothing bumped it since `after`, or it is a room
    joined through another server without any)."""
    rows = await conn.fetch(
        GET_BUMP_STAMPS, [room for room, _ in rooms], [upto for _, upto in rooms], after
    )
    return {r["room_id"]: r["bump_stamp"] for r in rows}


GET_MEMBER_COUNTS = """
SELECT room_id,
       count(*) FILTER (WHERE membership = 'join') AS joined,
       count(*) FILTER (WHERE membership = 'invite') AS invited
FROM room_memberships WHERE room_id = ANY($1) AND membership IN ('join', 'invite')
GROUP BY room_id
"""


async def get_member_counts(
    conn: asyncpg.Connection, room_ids: Sequence[str]
) -> dict[str, tuple[int, int]]:
    """room -> (joined, invited) members now; rooms with neither are left out."""
    rows = await conn.fetch(GET_MEMBER_COUNTS, list(room_ids))
    return {r["room_id"]: (r["joined"], r["invited"]) for r in rows}


GET_CURRENT_STATE_CONTENTS = """
SELECT cs.room_id, cs.type, e.json FROM current_state cs JOIN events e ON e.event_id = cs.event_id
WHERE cs.room_id = ANY($1) AND cs.type = ANY($2) AND cs.state_key = ''
"""


async def get_current_state_json(
    conn: asyncpg.Connection, room_ids: Sequence[str], types: Sequence[str]
) -> dict[tuple[str, str], str]:
    """(room, type) -> the PDU JSON of the rooms' current state events of these types (empty
    state keys), for filtering lists by room type and encryption in one query."""
    rows = await conn.fetch(GET_CURRENT_STATE_CONTENTS, list(room_ids), list(types))
    return {(r["room_id"], r["type"]): r["json"] for r in rows}
