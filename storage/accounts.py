"""The `users`, `devices`, `access_tokens` and `refresh_tokens` tables, and each user's
`profiles` row at registration (`storage.profiles` reads and changes it).

Access and refresh tokens are only ever stored as their SHA-256 digest, so a leaked database
dump cannot be replayed against the server. Deleting a device deletes its tokens, and deleting a
refresh token the access token issued with it (ON DELETE CASCADE).
"""

from __future__ import annotations

import asyncpg

INSERT_USER = """
INSERT INTO users (user_id, password_hash, is_admin, created_ts, is_guest, user_type)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (user_id) DO NOTHING
"""


async def insert_user(
    conn: asyncpg.Connection, user_id: str, password_hash: str | None, is_admin: bool,
    created_ts: int, *, is_guest: bool = False, user_type: str | None = None,
) -> bool:
    """False if the user ID is already taken (a deactivated account keeps its name)."""
    status: str = await conn.execute(
        INSERT_USER, user_id, password_hash, is_admin, created_ts, is_guest, user_type
    )
    return status.endswith(" 1")


UPGRADE_GUEST = """
UPDATE users SET is_guest = false, password_hash = $2
WHERE user_id = $1 AND is_guest AND NOT deactivated
"""


async def upgrade_guest(
    conn: asyncpg.Connection, user_id: str, password_hash: str | None
) -> bool:
    """Make a guest a full account with a password; False if `user_id` is no (live) guest."""
    status: str = await conn.execute(UPGRADE_GUEST, user_id, password_hash)
    return status.endswith(" 1")


GET_JOINED_GUESTS = """
SELECT m.user_id FROM room_memberships m JOIN users u USING (user_id)
WHERE m.room_id = $1 AND m.membership = 'join' AND u.is_guest
"""


async def get_joined_guests(conn: asyncpg.Connection, room_id: str) -> list[str]:
    """The guest accounts of this server joined to the room."""
    return [r["user_id"] for r in await conn.fetch(GET_JOINED_GUESTS, room_id)]


GET_ROOMS_BARRING_JOINED_GUESTS = """
SELECT DISTINCT m.room_id FROM room_memberships m JOIN users u USING (user_id)
LEFT JOIN current_state s
    ON s.room_id = m.room_id AND s.type = 'm.room.guest_access' AND s.state_key = ''
LEFT JOIN events e ON e.event_id = s.event_id
WHERE m.membership = 'join' AND u.is_guest
  AND (e.json::jsonb #>> '{content,guest_access}') IS DISTINCT FROM 'can_join'
"""


async def get_rooms_barring_joined_guests(conn: asyncpg.Connection) -> list[str]:
    """Rooms a guest account of this server is joined to although the room's current
    `m.room.guest_access` is not `can_join`: guests the server did not get round to removing
    before it last stopped (the caller checks each room again before acting)."""
    return [r["room_id"] for r in await conn.fetch(GET_ROOMS_BARRING_JOINED_GUESTS)]


GET_USER = "SELECT user_id, password_hash, is_admin, deactivated FROM users WHERE user_id = $1"


async def get_user(conn: asyncpg.Connection, user_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_USER, user_id)


INSERT_DEVICE = """
INSERT INTO devices (user_id, device_id, display_name, created_ts) VALUES ($1, $2, $3, $4)
ON CONFLICT (user_id, device_id) DO NOTHING
"""


async def insert_device(
    conn: asyncpg.Connection, user_id: str, device_id: str, display_name: str | None,
    created_ts: int,
) -> bool:
    """Create the device; False (and nothing changed) if the user already has it."""
    status: str = await conn.execute(INSERT_DEVICE, user_id, device_id, display_name, created_ts)
    return status.endswith(" 1")


GET_DEVICES = """
SELECT device_id, display_name, last_seen_ts, last_seen_ip, last_seen_user_agent FROM devices
WHERE user_id = $1 ORDER BY device_id
"""


async def get_devices(conn: asyncpg.Connection, user_id: str) -> list[asyncpg.Record]:
    return list(await conn.fetch(GET_DEVICES, user_id))


GET_DEVICE = """
SELECT device_id, display_name, last_seen_ts, last_seen_ip, last_seen_user_agent FROM devices
WHERE user_id = $1 AND device_id = $2
"""


async def get_device(
    conn: asyncpg.Connection, user_id: str, device_id: str
) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_DEVICE, user_id, device_id)


UPDATE_DEVICE_DISPLAY_NAME = """
UPDATE devices SET display_name = $3 WHERE user_id = $1 AND device_id = $2
"""


async def update_device_display_name(
    conn: asyncpg.Connection, user_id: str, device_id: str, display_name: str
) -> bool:
    """False if the user has no such device."""
    status: str = await conn.execute(UPDATE_DEVICE_DISPLAY_NAME, user_id, device_id, display_name)
    return status.endswith(" 1")


DELETE_DEVICES = """
DELETE FROM devices WHERE user_id = $1 AND device_id = ANY($2::text[]) RETURNING device_id
"""


async def delete_devices(
    conn: asyncpg.Connection, user_id: str, device_ids: list[str]
) -> list[str]:
    """Delete the listed devices (and their tokens and keys); the IDs that existed."""
    return [r["device_id"] for r in await conn.fetch(DELETE_DEVICES, user_id, device_ids)]


DELETE_OTHER_DEVICES = """
DELETE FROM devices WHERE user_id = $1 AND device_id IS DISTINCT FROM $2 RETURNING device_id
"""


async def delete_other_devices(
    conn: asyncpg.Connection, user_id: str, keep_device_id: str | None
) -> list[str]:
    """Delete every device of the user except `keep_device_id`; the IDs deleted."""
    rows = await conn.fetch(DELETE_OTHER_DEVICES, user_id, keep_device_id)
    return [r["device_id"] for r in rows]


UPDATE_DEVICE_LAST_SEEN = """
UPDATE devices SET last_seen_ts = $3, last_seen_ip = $4,
                   last_seen_user_agent = coalesce($5, last_seen_user_agent)
WHERE user_id = $1 AND device_id = $2
"""


async def update_device_last_seen(
    conn: asyncpg.Connection, user_id: str, device_id: str, ts: int, ip: str | None,
    user_agent: str | None = None,
) -> None:
    """Where and when the device was last seen; a None `user_agent` keeps the stored one."""
    await conn.execute(UPDATE_DEVICE_LAST_SEEN, user_id, device_id, ts, ip, user_agent)


# One batch of devices not seen since $1 that still hold an address or a user agent (the
# devices table has no index on last_seen_ts: each batch is a scan that stops at $2 rows).
FORGET_CLIENT_ADDRESSES = """
UPDATE devices SET last_seen_ip = NULL, last_seen_user_agent = NULL
WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM devices
    WHERE (last_seen_ts IS NULL OR last_seen_ts <= $1)
      AND (last_seen_ip IS NOT NULL OR last_seen_user_agent IS NOT NULL)
    LIMIT $2 FOR UPDATE SKIP LOCKED
))
"""


async def forget_client_addresses(conn: asyncpg.Connection, seen_before_ts: int, limit: int) -> int:
    """Clear the last address and user agent of up to `limit` devices last seen at or before
    `seen_before_ts`; how many were cleared."""
    status: str = await conn.execute(FORGET_CLIENT_ADDRESSES, seen_before_ts, limit)
    return int(status.split()[-1])


INSERT_ACCESS_TOKEN = """
INSERT INTO access_tokens (token_hash, user_id, device_id, created_ts, expires_ts,
                           refresh_token_hash)
VALUES ($1, $2, $3, $4, $5, $6)
"""


async def insert_access_token(
    conn: asyncpg.Connection, token_hash: bytes, user_id: str, device_id: str, created_ts: int,
    expires_ts: int | None = None, refresh_token_hash: bytes | None = None,
) -> None:
    await conn.execute(
        INSERT_ACCESS_TOKEN, token_hash, user_id, device_id, created_ts, expires_ts,
        refresh_token_hash,
    )


DELETE_DEVICE_TOKENS = "DELETE FROM access_tokens WHERE user_id = $1 AND device_id = $2"
DELETE_DEVICE_REFRESH_TOKENS = "DELETE FROM refresh_tokens WHERE user_id = $1 AND device_id = $2"


async def delete_device_tokens(conn: asyncpg.Connection, user_id: str, device_id: str) -> None:
    """Revoke the device's access and refresh tokens but keep the device (a re-login on the
    same device ID)."""
    await conn.execute(DELETE_DEVICE_REFRESH_TOKENS, user_id, device_id)
    await conn.execute(DELETE_DEVICE_TOKENS, user_id, device_id)


GET_TOKEN_OWNER = """
SELECT t.user_id, t.device_id, t.expires_ts, u.is_admin, u.is_guest, u.deactivated,
       r.token_hash AS refresh_token_hash, r.previous_hash
FROM access_tokens t JOIN users u USING (user_id)
LEFT JOIN refresh_tokens r ON r.token_hash = t.refresh_token_hash
WHERE t.token_hash = $1
"""


async def get_token_owner(conn: asyncpg.Connection, token_hash: bytes) -> asyncpg.Record | None:
    """(user_id, device_id, expires_ts, is_admin, is_guest, deactivated, refresh_token_hash,
    previous_hash) of the token, or None if unknown. `previous_hash` is the refresh token
    exchanged for this token's pair, still alive until this pair is first used."""
    return await conn.fetchrow(GET_TOKEN_OWNER, token_hash)


INSERT_REFRESH_TOKEN = """
INSERT INTO refresh_tokens (token_hash, user_id, device_id, previous_hash, created_ts)
VALUES ($1, $2, $3, $4, $5)
"""


async def insert_refresh_token(
    conn: asyncpg.Connection, token_hash: bytes, user_id: str, device_id: str,
    previous_hash: bytes | None, created_ts: int,
) -> None:
    await conn.execute(
        INSERT_REFRESH_TOKEN, token_hash, user_id, device_id, previous_hash, created_ts
    )


GET_REFRESH_TOKEN_FOR_UPDATE = """
SELECT user_id, device_id, previous_hash FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE
"""


async def get_refresh_token_for_update(
    conn: asyncpg.Connection, token_hash: bytes
) -> asyncpg.Record | None:
    """(user_id, device_id, previous_hash) of a refresh token, locked until the transaction
    ends so that two concurrent refreshes of one token run one after the other."""
    return await conn.fetchrow(GET_REFRESH_TOKEN_FOR_UPDATE, token_hash)


DELETE_REFRESH_TOKENS = """
DELETE FROM refresh_tokens WHERE token_hash = ANY($1::bytea[]) OR previous_hash = ANY($2::bytea[])
"""


async def delete_refresh_tokens(
    conn: asyncpg.Connection, token_hashes: list[bytes], successors_of: list[bytes]
) -> None:
    """Revoke the given refresh tokens and those exchanged for `successors_of`, with the
    access tokens issued alongside them."""
    await conn.execute(DELETE_REFRESH_TOKENS, token_hashes, successors_of)


CLEAR_PREVIOUS_REFRESH_TOKEN = """
UPDATE refresh_tokens SET previous_hash = NULL WHERE token_hash = $1
"""


async def clear_previous_refresh_token(conn: asyncpg.Connection, token_hash: bytes) -> None:
    """The pair of `token_hash` is in use: its predecessor is gone and need not be revoked."""
    await conn.execute(CLEAR_PREVIOUS_REFRESH_TOKEN, token_hash)


UPDATE_PASSWORD_HASH = "UPDATE users SET password_hash = $2 WHERE user_id = $1"


async def update_password_hash(conn: asyncpg.Connection, user_id: str, password_hash: str) -> None:
    await conn.execute(UPDATE_PASSWORD_HASH, user_id, password_hash)


DEACTIVATE_USER = """
UPDATE users SET deactivated = true, erased = erased OR $2 WHERE user_id = $1
"""


async def deactivate_user(conn: asyncpg.Connection, user_id: str, erase: bool = False) -> None:
    """Mark the account deactivated, and with `erase` erased; the row stays, so the user ID
    is never handed out again."""
    await conn.execute(DEACTIVATE_USER, user_id, erase)


INSERT_PROFILE = "INSERT INTO profiles (user_id, displayname) VALUES ($1, $2)"


async def insert_profile(conn: asyncpg.Connection, user_id: str, displayname: str | None) -> None:
    await conn.execute(INSERT_PROFILE, user_id, displayname)
