"""Reads for the published room directory (`rooms.is_public`) and the user directory.

Both read room state through `moot_event_content` (migration 0009), which turns an event's
stored JSON into jsonb or NULL, so one event PostgreSQL cannot hold as jsonb never breaks a
listing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

# The state a directory entry is made of.
DIRECTORY_STATE_TYPES = [
    "m.room.create", "m.room.name", "m.room.topic", "m.room.canonical_alias", "m.room.avatar",
    "m.room.join_rules", "m.room.history_visibility", "m.room.guest_access",
]


def like_pattern(term: str, *, prefix: bool = False) -> str:
    """An ILIKE pattern matching `term` literally (anywhere, or at the start)."""
    escaped = (
        term.replace("\x00", "").replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    )
    return f"{escaped}%" if prefix else f"%{escaped}%"


GET_VISIBILITY = "SELECT is_public FROM rooms WHERE room_id = $1"


async def get_room_visibility(conn: asyncpg.Connection, room_id: str) -> bool | None:
    """Whether the room is published; None for a room this server does not know."""
    result: bool | None = await conn.fetchval(GET_VISIBILITY, room_id)
    return result


SET_VISIBILITY = "UPDATE rooms SET is_public = $2 WHERE room_id = $1"


async def set_room_visibility(conn: asyncpg.Connection, room_id: str, is_public: bool) -> None:
    await conn.execute(SET_VISIBILITY, room_id, is_public)


# A listing is the server's own directory, one network's (`$7`/`$8`: service and network), or
# both together with every network of the services `$9` (include_all_networks).
GET_PUBLIC_ROOMS = """
WITH listed AS (
    SELECT room_id FROM rooms WHERE is_public AND $7::text IS NULL
    UNION
    SELECT room_id FROM appservice_room_list
    WHERE CASE WHEN $7::text IS NULL THEN appservice_id = ANY($9::text[])
               ELSE appservice_id = $7 AND network_id = $8 END
), published AS (
    SELECT r.room_id,
           (SELECT count(*) FROM room_memberships m
             WHERE m.room_id = r.room_id AND m.membership = 'join') AS joined,
           (SELECT jsonb_object_agg(cs.type, coalesce(moot_event_content(e.json), '{}'))
              FROM current_state cs JOIN events e USING (event_id)
             WHERE cs.room_id = r.room_id AND cs.state_key = '' AND cs.type = ANY($1))
             AS state
    FROM listed r
)
SELECT room_id, joined, coalesce(state, '{}') AS state, count(*) OVER () AS total
FROM published
WHERE ($2::text IS NULL
       OR state -> 'm.room.name' ->> 'name' ILIKE $2
       OR state -> 'm.room.topic' ->> 'topic' ILIKE $2
       OR state -> 'm.room.canonical_alias' ->> 'alias' ILIKE $2)
  AND ($3::text[] IS NULL
       OR state -> 'm.room.create' ->> 'type' = ANY($3)
       OR ($4 AND state -> 'm.room.create' ->> 'type' IS NULL))
ORDER BY joined DESC, room_id
LIMIT $5 OFFSET $6
"""


@dataclass(frozen=True, slots=True)
class Listing:
    """Which directory to read: one application service network's (`network`: service id and
    network id), else the server's own plus the networks of the services `all_networks_of`."""

    network: tuple[str, str] | None = None
    all_networks_of: tuple[str, ...] = ()


OWN_DIRECTORY = Listing()  # the server's own published rooms, no network's


async def get_public_rooms(
    conn: asyncpg.Connection, *, pattern: str | None, room_types: Sequence[str] | None,
    include_untyped: bool, limit: int, offset: int, listing: Listing = OWN_DIRECTORY,
) -> list[asyncpg.Record]:
    """Published rooms, most joined members first: room_id, joined, state (type -> content)
    and total (matches before paging)."""
    service, network = listing.network or (None, None)
    return list(await conn.fetch(
        GET_PUBLIC_ROOMS, DIRECTORY_STATE_TYPES, pattern,
        list(room_types) if room_types is not None else None, include_untyped, limit, offset,
        service, network, list(listing.all_networks_of),
    ))


# Users joined to a room the searcher is joined to, or to a room anyone may join or read.
# A missing display name (another server's user has no profile row) is no prefix match: a
# NULL would sort ahead of every match in DESC order.
SEARCH_USERS = """
WITH visible_rooms AS (
    SELECT room_id FROM room_memberships WHERE user_id = $1 AND membership = 'join'
    UNION
    SELECT cs.room_id FROM current_state cs JOIN events e USING (event_id)
    WHERE cs.state_key = '' AND (
        (cs.type = 'm.room.join_rules'
         AND moot_event_content(e.json) ->> 'join_rule' = 'public')
        OR (cs.type = 'm.room.history_visibility'
            AND moot_event_content(e.json) ->> 'history_visibility' = 'world_readable'))
), candidates AS (
    SELECT DISTINCT m.user_id FROM room_memberships m JOIN visible_rooms v USING (room_id)
    WHERE m.membership = 'join'
)
SELECT c.user_id, p.displayname, p.avatar_url
FROM candidates c
LEFT JOIN profiles p USING (user_id)
LEFT JOIN users u USING (user_id)
WHERE NOT coalesce(u.deactivated, false)
  AND (c.user_id ILIKE $2 OR p.displayname ILIKE $2)
ORDER BY (c.user_id ILIKE $3 OR coalesce(p.displayname ILIKE $4, false)) DESC,
         (p.displayname IS NOT NULL) DESC, c.user_id
LIMIT $5
"""


async def search_users(
    conn: asyncpg.Connection, searcher: str, term: str, limit: int
) -> list[dict[str, Any]]:
    """Matching users the searcher may find, prefix matches first; at most `limit`."""
    rows = await conn.fetch(
        SEARCH_USERS, searcher, like_pattern(term),
        "@" + like_pattern(term.lstrip("@"), prefix=True), like_pattern(term, prefix=True),
        limit,
    )
    return [dict(r) for r in rows]
