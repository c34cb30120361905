"""Room state: snapshots stored as deltas, and the materialized current state and membership.

Theory of operation: a state group is a set of (type, state_key) -> event_id entries plus an
optional parent group. The state of a group is its parent's state overlaid with its own entries.
A chain of deltas is cut by writing a full snapshot every MAX_DELTA_DEPTH hops, so reading a
state costs at most that many joins however long the room's history is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import asyncpg

from homeserver.protocol.state_keys import StateKey

StateMap = dict[StateKey, str]

MAX_DELTA_DEPTH = 64

INSERT_GROUP = """
INSERT INTO state_groups (room_id, prev_group, delta_depth) VALUES ($1, $2, $3)
RETURNING state_group
"""
INSERT_ENTRIES = """
INSERT INTO state_group_entries (state_group, type, state_key, event_id)
SELECT $1, t, k, e FROM unnest($2::text[], $3::text[], $4::text[]) AS x(t, k, e)
"""
GET_DELTA_DEPTH = "SELECT delta_depth FROM state_groups WHERE state_group = $1"


async def insert_state_group(
    conn: asyncpg.Connection, room_id: str, prev_group: int | None, delta: Mapping[StateKey, str]
) -> int:
    """Store the state `prev_group` + `delta` and return its group ID.

    When the parent's chain is already MAX_DELTA_DEPTH long, the full state is written instead.
    """
    depth = 0
    entries: Mapping[StateKey, str] = delta
    if prev_group is not None:
        parent_depth = await conn.fetchval(GET_DELTA_DEPTH, prev_group)
        if parent_depth + 1 >= MAX_DELTA_DEPTH:
            entries = {**await get_state(conn, prev_group), **delta}
            prev_group = None
        else:
            depth = parent_depth + 1
    group: int = await conn.fetchval(INSERT_GROUP, room_id, prev_group, depth)
    if entries:
        keys = list(entries)
        await conn.execute(INSERT_ENTRIES, group, *_columns(keys), [entries[k] for k in keys])
    return group


# The entries of group $1 and all its ancestors, nearest first per (type, state_key).
_GROUP_STATE = """
WITH RECURSIVE chain(state_group, prev_group, hop) AS (
    SELECT state_group, prev_group, 0 FROM state_groups WHERE state_group = $1
    UNION ALL
    SELECT g.state_group, g.prev_group, c.hop + 1
    FROM state_groups g JOIN chain c ON g.state_group = c.prev_group
)
SELECT DISTINCT ON (s.type, s.state_key) s.type, s.state_key, s.event_id
FROM state_group_entries s JOIN chain c USING (state_group)
WHERE {condition}
ORDER BY s.type, s.state_key, c.hop
"""
GET_STATE = _GROUP_STATE.format(condition="$2::text[] IS NULL OR s.type = ANY($2)")
GET_STATE_FOR_KEYS = _GROUP_STATE.format(
    condition="(s.type, s.state_key) IN (SELECT * FROM unnest($2::text[], $3::text[]))"
)


def _state_map(rows: Iterable[asyncpg.Record]) -> StateMap:
    return {(r["type"], r["state_key"]): r["event_id"] for r in rows}


def _columns(keys: Sequence[StateKey]) -> tuple[list[str], list[str]]:
    """(types, state_keys) as two arrays, for `unnest($n, $m)`."""
    return [k[0] for k in keys], [k[1] for k in keys]


async def get_state(
    conn: asyncpg.Connection, group: int, types: Sequence[str] | None = None
) -> StateMap:
    """The full state of a group, optionally only the given event types."""
    rows = await conn.fetch(GET_STATE, group, list(types) if types is not None else None)
    return _state_map(rows)


async def get_state_for_keys(
    conn: asyncpg.Connection, group: int, keys: Sequence[StateKey]
) -> StateMap:
    """Only the given (type, state_key) entries of a group's state."""
    return _state_map(await conn.fetch(GET_STATE_FOR_KEYS, group, *_columns(keys)))


GET_CURRENT_STATE = """
SELECT type, state_key, event_id FROM current_state
WHERE room_id = $1 AND ($2::text[] IS NULL OR type = ANY($2))
"""


async def get_current_state(
    conn: asyncpg.Connection, room_id: str, types: Sequence[str] | None = None
) -> StateMap:
    rows = await conn.fetch(GET_CURRENT_STATE, room_id, list(types) if types else None)
    return _state_map(rows)


GET_CURRENT_STATE_FOR_KEYS = """
SELECT type, state_key, event_id FROM current_state
WHERE room_id = $1 AND (type, state_key) IN (SELECT * FROM unnest($2::text[], $3::text[]))
"""


async def get_current_state_for_keys(
    conn: asyncpg.Connection, room_id: str, keys: Sequence[StateKey]
) -> StateMap:
    """Only the given (type, state_key) entries of the current state (the auth events)."""
    return _state_map(await conn.fetch(GET_CURRENT_STATE_FOR_KEYS, room_id, *_columns(keys)))


GET_CURRENT_STATE_EVENT = """
SELECT event_id FROM current_state WHERE room_id = $1 AND type = $2 AND state_key = $3
"""


async def get_current_state_event_id(
    conn: asyncpg.Connection, room_id: str, key: StateKey
) -> str | None:
    result: str | None = await conn.fetchval(GET_CURRENT_STATE_EVENT, room_id, key[0], key[1])
    return result


UPSERT_CURRENT_STATE = """
INSERT INTO current_state (room_id, type, state_key, event_id) VALUES ($1, $2, $3, $4)
ON CONFLICT (room_id, type, state_key) DO UPDATE SET event_id = EXCLUDED.event_id
"""


async def upsert_current_state(
    conn: asyncpg.Connection, room_id: str, key: StateKey, event_id: str
) -> None:
    await conn.execute(UPSERT_CURRENT_STATE, room_id, key[0], key[1], event_id)


UPSERT_MEMBERSHIP = """
INSERT INTO room_memberships (room_id, user_id, membership, event_id, stream_ordering)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (room_id, user_id) DO UPDATE
SET membership = EXCLUDED.membership, event_id = EXCLUDED.event_id,
    stream_ordering = EXCLUDED.stream_ordering, forgotten = false
"""


async def upsert_membership(
    conn: asyncpg.Connection, room_id: str, user_id: str, membership: str, event_id: str,
    stream_ordering: int,
) -> None:
    await conn.execute(UPSERT_MEMBERSHIP, room_id, user_id, membership, event_id, stream_ordering)


GET_MEMBERSHIP = """
SELECT membership, event_id, stream_ordering, forgotten FROM room_memberships
WHERE room_id = $1 AND user_id = $2
"""


async def get_membership(
    conn: asyncpg.Connection, room_id: str, user_id: str
) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_MEMBERSHIP, room_id, user_id)


COUNT_MEMBERS = """
SELECT count(*) FROM room_memberships WHERE room_id = $1 AND membership = ANY($2)
"""


async def count_members(
    conn: asyncpg.Connection, room_id: str, memberships: Iterable[str]
) -> int:
    result: int = await conn.fetchval(COUNT_MEMBERS, room_id, list(memberships))
    return result


GET_MEMBERS = """
SELECT user_id, membership, event_id FROM room_memberships
WHERE room_id = $1 AND ($2::text[] IS NULL OR membership = ANY($2))
ORDER BY stream_ordering
"""


async def get_members(
    conn: asyncpg.Connection, room_id: str, memberships: Iterable[str] | None = None
) -> list[asyncpg.Record]:
    arg = list(memberships) if memberships is not None else None
    return list(await conn.fetch(GET_MEMBERS, room_id, arg))


HAS_MEMBERSHIP_IN_ANY = """
SELECT EXISTS (
    SELECT 1 FROM room_memberships
    WHERE room_id = ANY($1) AND user_id = $2 AND membership = ANY($3)
)
"""


async def has_membership_in_any(
    conn: asyncpg.Connection, user_id: str, room_ids: Sequence[str], memberships: Iterable[str]
) -> bool:
    """Whether the user has one of the memberships in one of the rooms: one query however many
    rooms are asked about (a peer's list of rooms, for one)."""
    found: bool = await conn.fetchval(
        HAS_MEMBERSHIP_IN_ANY, list(room_ids), user_id, list(memberships)
    )
    return found


# A user ID's server name is what follows its first ':' (localparts hold no ':').
SERVER_HAS_MEMBERSHIP_IN_ANY = """
SELECT EXISTS (
    SELECT 1 FROM room_memberships
    WHERE room_id = ANY($1) AND membership = ANY($3)
      AND substr(user_id, strpos(user_id, ':') + 1) = $2
)
"""


async def server_has_membership_in_any(
    conn: asyncpg.Connection, server_name: str, room_ids: Sequence[str],
    memberships: Iterable[str],
) -> bool:
    """Whether a user of the server has one of the memberships in one of the rooms, in one
    query (without loading the rooms' member lists)."""
    found: bool = await conn.fetchval(
        SERVER_HAS_MEMBERSHIP_IN_ANY, list(room_ids), server_name, list(memberships)
    )
    return found


GET_ROOMS_FOR_USER = """
SELECT room_id, membership, event_id, stream_ordering FROM room_memberships
WHERE user_id = $1 AND membership = ANY($2) AND NOT forgotten
"""


async def get_rooms_for_user(
    conn: asyncpg.Connection, user_id: str, memberships: Iterable[str]
) -> list[asyncpg.Record]:
    return list(await conn.fetch(GET_ROOMS_FOR_USER, user_id, list(memberships)))


GET_MUTUAL_ROOMS = """
SELECT a.room_id FROM room_memberships a JOIN room_memberships b USING (room_id)
WHERE a.user_id = $1 AND a.membership = 'join' AND b.user_id = $2 AND b.membership = 'join'
ORDER BY a.room_id
"""


async def get_mutual_rooms(conn: asyncpg.Connection, user_a: str, user_b: str) -> list[str]:
    """The rooms both users are joined to, by room ID."""
    return [r["room_id"] for r in await conn.fetch(GET_MUTUAL_ROOMS, user_a, user_b)]


GET_MEMBERSHIPS_OF = """
SELECT room_id, membership, event_id, stream_ordering, forgotten FROM room_memberships
WHERE user_id = $1
"""


async def get_memberships_of(conn: asyncpg.Connection, user_id: str) -> list[asyncpg.Record]:
    """Every membership row of the user, forgotten rooms included."""
    return list(await conn.fetch(GET_MEMBERSHIPS_OF, user_id))


FORGET_ROOM = """
UPDATE room_memberships SET forgotten = true
WHERE room_id = $1 AND user_id = $2 AND membership IN ('leave', 'ban')
"""


async def forget_room(conn: asyncpg.Connection, room_id: str, user_id: str) -> bool:
    status: str = await conn.execute(FORGET_ROOM, room_id, user_id)
    return status.endswith(" 1")


DELETE_CURRENT_STATE = """
DELETE FROM current_state
WHERE room_id = $1 AND (type, state_key) IN (SELECT * FROM unnest($2::text[], $3::text[]))
"""


async def delete_current_state(
    conn: asyncpg.Connection, room_id: str, keys: Sequence[StateKey]
) -> None:
    """Drop entries from the current state (state resolution may leave a key unset)."""
    if keys:
        await conn.execute(DELETE_CURRENT_STATE, room_id, *_columns(keys))
