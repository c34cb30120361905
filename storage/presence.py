"""The `presence` table: each user's presence state and the stream position of its last change."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class PresenceRow:
    user_id: str
    state: str
    status_msg: str | None
    last_active_ts: int
    stream_id: int
    displayname: str | None = None
    avatar_url: str | None = None


def _row(r: asyncpg.Record) -> PresenceRow:
    return PresenceRow(
        r["user_id"], r["state"], r["status_msg"], r["last_active_ts"], r["stream_id"],
        r.get("displayname"), r.get("avatar_url"),
    )


UPSERT_PRESENCE = """
INSERT INTO presence (user_id, state, status_msg, last_active_ts, stream_id)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (user_id) DO UPDATE
SET state = EXCLUDED.state, status_msg = EXCLUDED.status_msg,
    last_active_ts = EXCLUDED.last_active_ts, stream_id = EXCLUDED.stream_id
"""


async def upsert_presence(
    conn: asyncpg.Connection, user_id: str, state: str, status_msg: str | None,
    last_active_ts: int, stream_id: int,
) -> None:
    await conn.execute(UPSERT_PRESENCE, user_id, state, status_msg, last_active_ts, stream_id)


TOUCH_PRESENCE = "UPDATE presence SET last_active_ts = $2 WHERE user_id = $1"


async def touch_presence(conn: asyncpg.Connection, user_id: str, last_active_ts: int) -> None:
    """Move the activity time on without a stream position: not a change others are sent."""
    await conn.execute(TOUCH_PRESENCE, user_id, last_active_ts)


GET_PRESENCE = """
SELECT user_id, state, status_msg, last_active_ts, stream_id FROM presence WHERE user_id = $1
"""


async def get_presence(conn: asyncpg.Connection, user_id: str) -> PresenceRow | None:
    row = await conn.fetchrow(GET_PRESENCE, user_id)
    return _row(row) if row is not None else None


GET_IDLE_USERS = """
SELECT user_id FROM presence WHERE state <> 'offline' AND last_active_ts < $1
ORDER BY last_active_ts LIMIT $2
"""


async def get_idle_users(conn: asyncpg.Connection, active_before: int, limit: int) -> list[str]:
    """Users still shown online or unavailable whose last activity is older than the bound."""
    return [r["user_id"] for r in await conn.fetch(GET_IDLE_USERS, active_before, limit)]


LOCK_IF_IDLE = """
SELECT 1 FROM presence WHERE user_id = $1 AND state <> 'offline' AND last_active_ts < $2
FOR UPDATE
"""
SET_OFFLINE = "UPDATE presence SET state = 'offline', stream_id = $2 WHERE user_id = $1"


async def lock_if_idle(conn: asyncpg.Connection, user_id: str, idle_before: int) -> bool:
    """Lock the user's row if they are still idle (not offline, inactive since the bound)."""
    return await conn.fetchval(LOCK_IF_IDLE, user_id, idle_before) is not None


async def set_offline(conn: asyncpg.Connection, user_id: str, stream_id: int) -> None:
    await conn.execute(SET_OFFLINE, user_id, stream_id)


# The users who share a joined room with $1 (including $1 when joined anywhere).
_ROOMMATES = """
SELECT DISTINCT theirs.user_id FROM room_memberships mine
JOIN room_memberships theirs ON theirs.room_id = mine.room_id AND theirs.membership = 'join'
WHERE mine.user_id = $1 AND mine.membership = 'join'
"""


async def get_roommates(conn: asyncpg.Connection, user_id: str) -> set[str]:
    return {r["user_id"] for r in await conn.fetch(_ROOMMATES, user_id)}


SHARES_ROOM = """
SELECT EXISTS (
    SELECT 1 FROM room_memberships mine
    JOIN room_memberships theirs ON theirs.room_id = mine.room_id
    WHERE mine.user_id = $1 AND mine.membership = 'join'
      AND theirs.user_id = $2 AND theirs.membership = 'join'
)
"""


async def shares_room(conn: asyncpg.Connection, user_id: str, other: str) -> bool:
    result: bool = await conn.fetchval(SHARES_ROOM, user_id, other)
    return result


GET_CHANGES_FOR_ROOMMATES = f"""
SELECT p.user_id, p.state, p.status_msg, p.last_active_ts, p.stream_id,
       pr.displayname, pr.avatar_url
FROM presence p LEFT JOIN profiles pr USING (user_id)
WHERE p.stream_id > $2 AND p.stream_id <= $3
  AND (p.user_id = $1 OR p.user_id IN ({_ROOMMATES}))
ORDER BY p.stream_id
"""


async def get_changes_for_roommates(
    conn: asyncpg.Connection, user_id: str, after: int, upto: int
) -> Sequence[PresenceRow]:
    """Presence changed in (after, upto] of `user_id` and the users sharing a room with them."""
    return [_row(r) for r in await conn.fetch(GET_CHANGES_FOR_ROOMMATES, user_id, after, upto)]


GET_PRESENCE_OF = """
SELECT p.user_id, p.state, p.status_msg, p.last_active_ts, p.stream_id,
       pr.displayname, pr.avatar_url
FROM presence p LEFT JOIN profiles pr USING (user_id)
WHERE p.user_id = ANY($1) AND p.stream_id <= $2
ORDER BY p.stream_id
"""


async def get_presence_of(
    conn: asyncpg.Connection, user_ids: Sequence[str], upto: int
) -> Sequence[PresenceRow]:
    """The presence of these users as last changed at or before `upto` (a later change is the
    next sync's), for those who have any."""
    return [_row(r) for r in await conn.fetch(GET_PRESENCE_OF, list(user_ids), upto)]
