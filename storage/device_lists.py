"""The device-list stream (`device_list_changes`), the membership reads that decide who must
hear about a change (the users who share a joined room with someone), and where other servers'
users' device-list updates have got to (`remote_device_list_streams`).
"""

from __future__ import annotations

import asyncpg

INSERT_CHANGE = "INSERT INTO device_list_changes (stream_id, user_id) VALUES ($1, $2)"


async def insert_change(conn: asyncpg.Connection, stream_id: int, user_id: str) -> None:
    await conn.execute(INSERT_CHANGE, stream_id, user_id)


GET_REMOTE_STREAM = "SELECT stream_id FROM remote_device_list_streams WHERE user_id = $1"
UPSERT_REMOTE_STREAM = """
INSERT INTO remote_device_list_streams (user_id, stream_id) VALUES ($1, $2)
ON CONFLICT (user_id) DO UPDATE SET stream_id = EXCLUDED.stream_id
"""


async def get_remote_stream(conn: asyncpg.Connection, user_id: str) -> int | None:
    """The stream_id of the last device-list update applied for another server's user."""
    position: int | None = await conn.fetchval(GET_REMOTE_STREAM, user_id)
    return position


async def upsert_remote_stream(conn: asyncpg.Connection, user_id: str, stream_id: int) -> None:
    await conn.execute(UPSERT_REMOTE_STREAM, user_id, stream_id)


GET_LATEST_CHANGE = "SELECT max(stream_id) FROM device_list_changes WHERE user_id = $1"


async def get_latest_change(conn: asyncpg.Connection, user_id: str) -> int:
    """The stream position of the user's last device-list change (0: none recorded)."""
    position: int | None = await conn.fetchval(GET_LATEST_CHANGE, user_id)
    return position or 0


GET_CHANGED_USERS_SHARING = """
SELECT DISTINCT c.user_id FROM device_list_changes c
WHERE c.stream_id > $2 AND c.stream_id <= $3 AND (
    c.user_id = $1 OR EXISTS (
        SELECT 1 FROM room_memberships mine JOIN room_memberships theirs USING (room_id)
        WHERE mine.user_id = $1 AND mine.membership = 'join'
          AND theirs.user_id = c.user_id AND theirs.membership = 'join'
    )
)
"""


async def get_changed_users_sharing(
    conn: asyncpg.Connection, user_id: str, after: int, upto: int
) -> set[str]:
    """Users whose device list changed in (after, upto] and who are `user_id` or share a
    joined room with them."""
    rows = await conn.fetch(GET_CHANGED_USERS_SHARING, user_id, after, upto)
    return {r["user_id"] for r in rows}


GET_USERS_SHARING_ROOM = """
SELECT DISTINCT theirs.user_id
FROM room_memberships mine JOIN room_memberships theirs USING (room_id)
WHERE mine.user_id = $1 AND mine.membership = 'join' AND theirs.membership = 'join'
"""


async def get_users_sharing_room(conn: asyncpg.Connection, user_id: str) -> set[str]:
    """Every user in a room `user_id` is joined to (including `user_id` when in any room)."""
    return {r["user_id"] for r in await conn.fetch(GET_USERS_SHARING_ROOM, user_id)}


GET_JOINED_USERS_IN_ROOMS = """
SELECT DISTINCT user_id FROM room_memberships WHERE room_id = ANY($1) AND membership = 'join'
"""


async def get_joined_users_in_rooms(
    conn: asyncpg.Connection, room_ids: list[str]
) -> set[str]:
    return {r["user_id"] for r in await conn.fetch(GET_JOINED_USERS_IN_ROOMS, room_ids)}


GET_MEMBERSHIP_CHANGES_IN_ROOMS_OF = """
SELECT DISTINCT ON (e.room_id, e.state_key)
       e.room_id, e.state_key AS user_id, e.json::jsonb #>> '{content,membership}' AS membership
FROM events e
WHERE e.type = 'm.room.member' AND e.stream_ordering > $2 AND e.stream_ordering <= $3
  AND e.rejection_reason IS NULL AND NOT e.soft_failed
  AND e.room_id IN (SELECT room_id FROM room_memberships WHERE user_id = $1)
ORDER BY e.room_id, e.state_key, e.stream_ordering DESC
"""


async def get_membership_changes_in_rooms_of(
    conn: asyncpg.Connection, user_id: str, after: int, upto: int
) -> list[asyncpg.Record]:
    """(room_id, user_id, membership) of the latest membership change in (after, upto] of
    each member of every room `user_id` has a membership in (joined, left, invited...)."""
    return list(await conn.fetch(GET_MEMBERSHIP_CHANGES_IN_ROOMS_OF, user_id, after, upto))
