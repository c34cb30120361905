"""Erasing a deactivated user's data (client-server-api "Account deactivation", `erase`):
every row about the user that is not an event goes.

Every table with a column naming a user is listed here, in one of three lists (a test fails
when a new one is in none):
- `ERASE_STATEMENTS` delete (or, for a row shared with other users, strip) the user's rows,
  in the caller's transaction;
- `ERASED_ELSEWHERE` are cleared by the services that own them, in the same deactivation:
  `devices` (with them their tokens, keys, to-device inbox, pushers and sliding sync
  connections, by ON DELETE CASCADE) and the cleared `profiles` row by
  `AccountsService.deactivate`, `local_media` (with the files no one else uses) by
  `MediaService.delete_local_media`;
- `KEPT` stay, each for the reason beside it.

Events stay: they are signed, other servers hold copies, and the room's DAG needs them. The
read paths serve an erased user's events redacted to whoever was not joined when they were
sent (homeserver/services/event_views.py, federation/room_reads.py).
"""

from __future__ import annotations

import asyncpg

# The user's rooms, to reach the rows kept per room without reading every room's rows.
_USER_ROOMS = "SELECT room_id FROM room_memberships WHERE user_id = $1"

ERASE_ACCOUNT_DATA = "DELETE FROM account_data WHERE user_id = $1"  # global, per room, tags
ERASE_FILTERS = "DELETE FROM filters WHERE user_id = $1"
ERASE_CLIENT_TXNS = "DELETE FROM client_transactions WHERE user_id = $1"
ERASE_RECEIPTS = "DELETE FROM receipts WHERE user_id = $1"
ERASE_PRESENCE = "DELETE FROM presence WHERE user_id = $1"  # status message included
ERASE_PROFILE_UPDATES = "DELETE FROM profile_member_updates WHERE user_id = $1"
ERASE_UIA_SESSIONS = "DELETE FROM uia_sessions WHERE user_id = $1 OR registered_user_id = $1"
ERASE_CROSS_SIGNING_KEYS = "DELETE FROM e2e_cross_signing_keys WHERE user_id = $1"
# Signatures on the user's keys and the user's signatures on other users' keys.
ERASE_SIGNATURES = (
    "DELETE FROM e2e_signatures WHERE target_user_id = $1 OR signer_user_id = $1"
)
ERASE_BACKUP_KEYS = "DELETE FROM e2e_room_keys WHERE user_id = $1"
ERASE_BACKUP_VERSIONS = "DELETE FROM e2e_room_key_versions WHERE user_id = $1"
ERASE_PUSH_RULES = "DELETE FROM push_rules WHERE user_id = $1"
ERASE_PUSH_RULE_CHANGES = "DELETE FROM push_rule_default_changes WHERE user_id = $1"
ERASE_PUSH_DELIVERIES = "DELETE FROM push_deliveries WHERE user_id = $1"
ERASE_PUSHERS = "DELETE FROM pushers WHERE user_id = $1"
ERASE_TO_DEVICE_TXNS = "DELETE FROM to_device_transactions WHERE user_id = $1"
# Normally gone with the devices already (ON DELETE CASCADE); said again so that no row of
# a device deleted some other way survives.
ERASE_TO_DEVICE_INBOX = "DELETE FROM to_device_inbox WHERE user_id = $1"
ERASE_DEVICE_KEYS = "DELETE FROM e2e_device_keys WHERE user_id = $1"
ERASE_ONE_TIME_KEYS = "DELETE FROM e2e_one_time_keys WHERE user_id = $1"
ERASE_FALLBACK_KEYS = "DELETE FROM e2e_fallback_keys WHERE user_id = $1"
ERASE_SLIDING_SYNC = "DELETE FROM sliding_sync_connections WHERE user_id = $1"
ERASE_REFRESH_TOKENS = "DELETE FROM refresh_tokens WHERE user_id = $1"
ERASE_ACCESS_TOKENS = "DELETE FROM access_tokens WHERE user_id = $1"
# Pending notifications are shared by the users an event notifies: the user leaves them.
ERASE_PUSH_ACTIONS = f"""
UPDATE push_actions SET user_ids = array_remove(user_ids, $1)
WHERE room_id IN ({_USER_ROOMS}) AND $1 = ANY(user_ids)
"""
ERASE_EMPTY_PUSH_ACTIONS = f"""
DELETE FROM push_actions WHERE room_id IN ({_USER_ROOMS}) AND user_ids = '{{}}'
"""
# Search finds nothing the user wrote: later joiners see those events redacted, and those
# who saw them whole have them in their clients.
ERASE_SEARCH = """
DELETE FROM event_search
WHERE event_id IN (SELECT event_id FROM events WHERE sender = $1 AND state_key IS NULL)
"""
ERASE_NOTICES_ROOM = "DELETE FROM server_notices_rooms WHERE user_id = $1"

ERASE_STATEMENTS = (
    ERASE_ACCOUNT_DATA, ERASE_FILTERS, ERASE_CLIENT_TXNS, ERASE_RECEIPTS, ERASE_PRESENCE,
    ERASE_PROFILE_UPDATES, ERASE_UIA_SESSIONS, ERASE_CROSS_SIGNING_KEYS, ERASE_SIGNATURES,
    ERASE_BACKUP_KEYS, ERASE_BACKUP_VERSIONS, ERASE_PUSH_RULES, ERASE_PUSH_RULE_CHANGES,
    ERASE_PUSH_DELIVERIES, ERASE_PUSHERS, ERASE_TO_DEVICE_TXNS, ERASE_TO_DEVICE_INBOX,
    ERASE_DEVICE_KEYS, ERASE_ONE_TIME_KEYS, ERASE_FALLBACK_KEYS, ERASE_SLIDING_SYNC,
    ERASE_REFRESH_TOKENS, ERASE_ACCESS_TOKENS, ERASE_PUSH_ACTIONS, ERASE_EMPTY_PUSH_ACTIONS,
    ERASE_SEARCH, ERASE_NOTICES_ROOM,
)

ERASED_ELSEWHERE = ("devices", "profiles", "local_media")

KEPT = {
    "users": "the row stays, marked erased, so the ID is never registered again",
    "events": "signed and copied by other servers; served redacted to later joiners",
    "current_state": "the room's state (the user's last membership: a leave)",
    "state_group_entries": "the rooms' state history, which the DAG needs",
    "room_memberships": "derived from the member events",
    "rooms": "the creator of a room is its create event's sender",
    "room_aliases": "an alias the user made is the room's address, not the user's",
    "device_list_changes": "how others learn the user's devices are gone (IDs only)",
    "remote_device_list_streams": "other servers' users only",
    "remote_device_keys": "other servers' users only",
    "reports": "the admins' moderation record, as Synapse keeps its reports",
    "blocked_rooms": "the admin who blocked a room: the admins' record",
}


async def erase_user_rows(conn: asyncpg.Connection, user_id: str) -> None:
    """Run every statement of `ERASE_STATEMENTS` for the user."""
    for statement in ERASE_STATEMENTS:
        await conn.execute(statement, user_id)


GET_USER_MEDIA = "SELECT media_id FROM local_media WHERE user_id = $1"


async def get_user_media(conn: asyncpg.Connection, user_id: str) -> list[str]:
    """The IDs of every local media the user uploaded or reserved."""
    return [r["media_id"] for r in await conn.fetch(GET_USER_MEDIA, user_id)]


GET_ERASED = "SELECT user_id FROM users WHERE erased"


async def get_erased(conn: asyncpg.Connection) -> set[str]:
    """Every erased (local) user: few, and read whole once by the room cache, which every
    read asks (`RoomView.erased`)."""
    return {r["user_id"] for r in await conn.fetch(GET_ERASED)}
