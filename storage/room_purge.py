"""Deleting every row of one room (Synapse's room purge, after a room shutdown).

Every table that names a room or one of its events is listed here; the statements run in
this order, in the caller's transaction, which holds the room's row lock (`rooms.lock_room`)
first so that no event of the room is being written meanwhile. Rows in `federation_outbox_pdus`
and `appservice_queue` go with their events (ON DELETE CASCADE), `room_aliases` and
`appservice_room_list` with the room. Kept on purpose: `blocked_rooms` (a purged room stays
blocked), `reports` (the admins' record, as Synapse keeps its event reports) and
`e2e_room_keys` (each user's own key backup).
"""

from __future__ import annotations

import asyncpg

_ROOM_EVENTS = "SELECT event_id FROM events WHERE room_id = $1"

# Tables keyed by event: before the events go.
DELETE_EVENT_EDGES = f"DELETE FROM event_edges WHERE event_id IN ({_ROOM_EVENTS})"
DELETE_AUTH_EDGES = f"DELETE FROM event_auth_edges WHERE event_id IN ({_ROOM_EVENTS})"
DELETE_REDACTIONS = f"DELETE FROM event_redactions WHERE redaction_id IN ({_ROOM_EVENTS})"
DELETE_CLIENT_TXNS = f"DELETE FROM client_transactions WHERE event_id IN ({_ROOM_EVENTS})"
# Tables keyed by room.
DELETE_PUSH_ACTIONS = "DELETE FROM push_actions WHERE room_id = $1"
DELETE_PUSH_DELIVERIES = "DELETE FROM push_deliveries WHERE room_id = $1"
DELETE_SEARCH = "DELETE FROM event_search WHERE room_id = $1"
DELETE_RECEIPTS = "DELETE FROM receipts WHERE room_id = $1"
DELETE_ROOM_ACCOUNT_DATA = "DELETE FROM account_data WHERE room_id = $1"
DELETE_FORWARD_EXTREMITIES = "DELETE FROM forward_extremities WHERE room_id = $1"
DELETE_CURRENT_STATE = "DELETE FROM current_state WHERE room_id = $1"
DELETE_MEMBERSHIPS = "DELETE FROM room_memberships WHERE room_id = $1"
DELETE_EVENTS = "DELETE FROM events WHERE room_id = $1"
DELETE_STATE_ENTRIES = """
DELETE FROM state_group_entries
WHERE state_group IN (SELECT state_group FROM state_groups WHERE room_id = $1)
"""
DELETE_STATE_GROUPS = "DELETE FROM state_groups WHERE room_id = $1"
DELETE_ROOM = "DELETE FROM rooms WHERE room_id = $1"
# A purged notices room is gone for its user: the next server notice makes a new one.
DELETE_NOTICES_ROOM = "DELETE FROM server_notices_rooms WHERE room_id = $1"

PURGE_STATEMENTS = (
    DELETE_EVENT_EDGES, DELETE_AUTH_EDGES, DELETE_REDACTIONS, DELETE_CLIENT_TXNS,
    DELETE_PUSH_ACTIONS, DELETE_PUSH_DELIVERIES, DELETE_SEARCH, DELETE_NOTICES_ROOM,
    DELETE_RECEIPTS, DELETE_ROOM_ACCOUNT_DATA, DELETE_FORWARD_EXTREMITIES,
    DELETE_CURRENT_STATE, DELETE_MEMBERSHIPS, DELETE_EVENTS, DELETE_STATE_ENTRIES,
    DELETE_STATE_GROUPS, DELETE_ROOM,
)

# Tables naming a room or an event that the statements above leave alone: emptied by ON DELETE
# CASCADE, or kept on purpose (see the module's docstring).
CASCADED = ("federation_outbox_pdus", "appservice_queue", "room_aliases", "appservice_room_list")
KEPT = ("blocked_rooms", "reports", "e2e_room_keys")


async def purge_room(conn: asyncpg.Connection, room_id: str) -> None:
    """Delete the room's rows from every table (the caller holds the room's lock)."""
    for statement in PURGE_STATEMENTS:
        await conn.execute(statement, room_id)


GET_EVENT_IDS = _ROOM_EVENTS


async def get_event_ids(conn: asyncpg.Connection, room_id: str) -> list[str]:
    """Every event of the room this server holds (for dropping them from caches)."""
    return [r["event_id"] for r in await conn.fetch(GET_EVENT_IDS, room_id)]


COUNT_UNSENT = f"""
SELECT (SELECT count(*) FROM federation_outbox_pdus WHERE event_id IN ({_ROOM_EVENTS}))
     + (SELECT count(*) FROM appservice_queue WHERE event_id IN ({_ROOM_EVENTS}))
"""


async def count_unsent(conn: asyncpg.Connection, room_id: str) -> int:
    """How many of the room's events other servers and application services are still owed
    (the leaves of a shutdown, which a purge would take from the queues)."""
    count: int = await conn.fetchval(COUNT_UNSENT, room_id)
    return count
