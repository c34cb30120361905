"""What the admin API reads of the servers this one sends to (`federation_destinations`, whose
rows the federation sender writes through `storage.outbox`), in the shape of Synapse's
`destinations` table: when a destination last failed, how long it waits before the next
attempt, when its run of failures began, the latest event it accepted; and the rooms it shares
with this server (those where one of its users is joined)."""

from __future__ import annotations

import asyncpg

from storage.directory import like_pattern

# Synapse's columns from ours: 0 for the retry timing of a healthy destination, as in Synapse.
_COLUMNS = """
SELECT destination, coalesce(last_failure_ts, 0) AS retry_last_ts,
       coalesce(retry_at - last_failure_ts, 0) AS retry_interval, failure_ts,
       last_sent_stream_ordering AS last_successful_stream_ordering, failures
FROM federation_destinations
"""
# The orders Synapse's `order_by` names, each broken by the name.
ORDERS = {
    "destination": "destination",
    "retry_last_ts": "retry_last_ts",
    "retry_interval": "retry_interval",
    "failure_ts": "failure_ts",
    "last_successful_stream_ordering": "last_successful_stream_ordering",
}
_FILTER = "WHERE ($1::text IS NULL OR destination ILIKE $1)"
COUNT_DESTINATIONS = "SELECT count(*) FROM federation_destinations " + _FILTER


def _list_statement(order_by: str, backwards: bool) -> str:
    direction = "DESC" if backwards else "ASC"
    return (
        f"{_COLUMNS} {_FILTER} ORDER BY {ORDERS[order_by]} {direction} NULLS FIRST, "
        f"destination {direction} LIMIT $2 OFFSET $3"
    )


async def get_destinations(
    conn: asyncpg.Connection, name_contains: str | None, offset: int, limit: int, *,
    order_by: str, backwards: bool,
) -> tuple[list[asyncpg.Record], int]:
    """A page of destinations (those whose name holds `name_contains`, if given) in the order
    `order_by` (a key of ORDERS), and how many there are in all."""
    pattern = None if name_contains is None else like_pattern(name_contains)
    total: int = await conn.fetchval(COUNT_DESTINATIONS, pattern)
    rows = await conn.fetch(_list_statement(order_by, backwards), pattern, limit, offset)
    return list(rows), total


GET_DESTINATION = _COLUMNS + "WHERE destination = $1"


async def get_destination(conn: asyncpg.Connection, destination: str) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_DESTINATION, destination)


# A user ID's server name is everything after its first colon (localparts hold none).
_SHARED_ROOMS = """
FROM (SELECT DISTINCT room_id FROM room_memberships
      WHERE membership = 'join' AND substr(user_id, strpos(user_id, ':') + 1) = $1) shared
"""
COUNT_SHARED_ROOMS = "SELECT count(*)" + _SHARED_ROOMS
GET_SHARED_ROOMS = (
    "SELECT room_id, (SELECT max(stream_ordering) FROM events e"
    " WHERE e.room_id = shared.room_id) AS stream_ordering" + _SHARED_ROOMS
    + "ORDER BY CASE WHEN $4 THEN room_id END DESC, room_id LIMIT $2 OFFSET $3"
)


async def get_shared_rooms(
    conn: asyncpg.Connection, destination: str, offset: int, limit: int, *, backwards: bool
) -> tuple[list[asyncpg.Record], int]:
    """A page of the rooms where a user of `destination` is joined, by room ID, each with the
    stream position of its latest event; and how many there are."""
    total: int = await conn.fetchval(COUNT_SHARED_ROOMS, destination)
    rows = await conn.fetch(GET_SHARED_ROOMS, destination, limit, offset, backwards)
    return list(rows), total
