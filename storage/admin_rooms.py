"""Rooms as a server admin sees them (Synapse's admin "List Room" and "Room Details"): one
row per room from `rooms`, its current state (name, alias, rules, encryption, type) and its
membership counts, filtered, ordered and paged in SQL."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


def _string(event_type: str, key: str) -> str:
    """The string `key` of the content of the room's current `event_type` state event (empty
    state key), NULL when absent or not a string."""
    return f"""(
        SELECT moot_event_content(e.json) ->> '{key}' FROM current_state c
        JOIN events e ON e.event_id = c.event_id
        WHERE c.room_id = r.room_id AND c.type = '{event_type}' AND c.state_key = ''
          AND jsonb_typeof(moot_event_content(e.json) -> '{key}') = 'string'
    )"""


# Every column of a room's summary. `local` ($1) is ':' + this server's name: a user ID ends
# with it when the user is ours.
_SUMMARY = f"""
SELECT r.room_id, r.room_version, r.creator, r.is_public,
       {_string("m.room.name", "name")} AS name,
       {_string("m.room.canonical_alias", "alias")} AS canonical_alias,
       {_string("m.room.join_rules", "join_rule")} AS join_rules,
       {_string("m.room.guest_access", "guest_access")} AS guest_access,
       {_string("m.room.history_visibility", "history_visibility")} AS history_visibility,
       {_string("m.room.encryption", "algorithm")} AS encryption,
       {_string("m.room.create", "type")} AS room_type,
       {_string("m.room.topic", "topic")} AS topic,
       {_string("m.room.avatar", "url")} AS avatar,
       {_string("m.room.tombstone", "replacement_room")} AS replacement_room,
       coalesce((
           SELECT moot_event_content(e.json) -> 'm.federate' <> 'false'::jsonb
           FROM current_state c JOIN events e ON e.event_id = c.event_id
           WHERE c.room_id = r.room_id AND c.type = 'm.room.create' AND c.state_key = ''
       ), true) AS federatable,
       (SELECT count(*) FROM room_memberships m
        WHERE m.room_id = r.room_id AND m.membership = 'join') AS joined_members,
       (SELECT count(*) FROM room_memberships m
        WHERE m.room_id = r.room_id AND m.membership = 'join'
          AND right(m.user_id, length($1)) = $1) AS joined_local_members,
       (SELECT count(*) FROM current_state c WHERE c.room_id = r.room_id) AS state_events
FROM rooms r
"""


@dataclass(frozen=True, slots=True)
class RoomQuery:
    """Which rooms a listing shows: `search` in the name, the canonical alias's local part or
    the room ID; only public (True) or non-public (False) ones; only empty or non-empty ones;
    ordered by `order_by` (a key of ORDERS), reversed when not `forwards`."""

    search: str | None = None
    public: bool | None = None
    empty: bool | None = None
    order_by: str = "name"
    forwards: bool = True


# order_by -> (column, ascending going forwards): Synapse lists counts and versions largest
# first, names and the rest alphabetically.
ORDERS: dict[str, tuple[str, bool]] = {
    "name": ("name", True),
    "canonical_alias": ("canonical_alias", True),
    "joined_members": ("joined_members", False),
    "joined_local_members": ("joined_local_members", False),
    "version": ("room_version", False),
    "creator": ("creator", True),
    "encryption": ("encryption", True),
    "federatable": ("federatable", True),
    "public": ("is_public", True),
    "join_rules": ("join_rules", True),
    "guest_access": ("guest_access", True),
    "history_visibility": ("history_visibility", True),
    "state_events": ("state_events", False),
}
# Synapse's older names for two orders.
ORDERS["alphabetical"] = ORDERS["name"]
ORDERS["size"] = ORDERS["joined_members"]

_FILTERED = f"""
WITH summary AS ({_SUMMARY})
SELECT * FROM summary
WHERE ($2::text IS NULL
       OR strpos(lower(name), lower($2)) > 0
       OR strpos(lower(split_part(canonical_alias, ':', 1)), lower($2)) > 0
       OR strpos(room_id, $2) > 0)
  AND ($3::boolean IS NULL OR is_public = $3)
  AND ($4::boolean IS NULL OR (joined_members = 0) = $4)
"""
COUNT_ROOMS = f"SELECT count(*) FROM ({_FILTERED}) filtered"
# The ORDER BY is one of the fixed columns of ORDERS, never request text.
LIST_ROOMS = _FILTERED + "ORDER BY {column} {direction} NULLS LAST, room_id LIMIT $5 OFFSET $6"


def _args(local: str, q: RoomQuery) -> tuple[str, str | None, bool | None, bool | None]:
    return local, q.search, q.public, q.empty


async def count_rooms(conn: asyncpg.Connection, local: str, q: RoomQuery) -> int:
    total: int = await conn.fetchval(COUNT_ROOMS, *_args(local, q))
    return total


async def list_rooms(
    conn: asyncpg.Connection, local: str, q: RoomQuery, offset: int, limit: int
) -> list[asyncpg.Record]:
    """A page of room summaries (KeyError for an unknown `q.order_by`)."""
    column, ascending = ORDERS[q.order_by]
    direction = "ASC" if ascending == q.forwards else "DESC"
    sql = LIST_ROOMS.format(column=column, direction=direction)
    return list(await conn.fetch(sql, *_args(local, q), limit, offset))


GET_ROOM = f"""
SELECT s.*,
       (SELECT count(*) FROM devices d JOIN room_memberships m ON m.user_id = d.user_id
        WHERE m.room_id = s.room_id AND m.membership = 'join') AS joined_local_devices,
       NOT EXISTS (
           SELECT 1 FROM room_memberships m
           WHERE m.room_id = s.room_id AND right(m.user_id, length($1)) = $1 AND NOT m.forgotten
       ) AS forgotten,
       EXISTS (
           SELECT 1 FROM current_state c
           WHERE c.room_id = s.room_id AND c.type = 'm.room.tombstone' AND c.state_key = ''
       ) AS tombstoned
FROM ({_SUMMARY} WHERE r.room_id = $2) s
"""


async def get_room(conn: asyncpg.Connection, local: str, room_id: str) -> asyncpg.Record | None:
    """One room's summary with its topic, avatar, local devices joined, whether every local
    user forgot it (Synapse's `forgotten`) and whether it was replaced (`tombstoned`); None
    for a room this server does not know."""
    return await conn.fetchrow(GET_ROOM, local, room_id)


GET_LOCAL_MEMBERS = """
SELECT user_id, membership FROM room_memberships
WHERE room_id = $1 AND right(user_id, length($2)) = $2 AND membership = ANY($3)
ORDER BY user_id
"""


async def get_local_members(
    conn: asyncpg.Connection, room_id: str, local: str, memberships: list[str]
) -> list[asyncpg.Record]:
    """This server's users whose membership of the room is one of `memberships`."""
    return list(await conn.fetch(GET_LOCAL_MEMBERS, room_id, local, memberships))
