"""The `users`, `profiles`, `devices` and `access_tokens` tables.

Access tokens are only ever stored as their SHA-256 digest, so a leaked database dump cannot be
replayed against the server. Deleting a device deletes its tokens (ON DELETE CASCADE).
"""

from __future__ import annotations

import asyncpg

INSERT_USER = """
INSERT INTO users (user_id, password_hash, is_admin, created_ts) VALUES ($1, $2, $3, $4)
ON CONFLICT (user_id) DO NOTHING
"""


async def insert_user(
    conn: asyncpg.Connection, user_id: str, password_hash: str | None, is_admin: bool,
    created_ts: int,
) -> bool:
    """False if the user ID is already taken (a deactivated account keeps its name)."""
    status: str = await conn.execute(INSERT_USER, user_id, password_hash, is_admin, created_ts)
    return status.endswith(" 1")


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
SELECT device_id, display_name, last_seen_ts, last_seen_ip FROM devices
WHERE user_id = $1 ORDER BY device_id
"""


async def get_devices(conn: asyncpg.Connection, user_id: str) -> list[asyncpg.Record]:
    return list(await conn.fetch(GET_DEVICES, user_id))


DELETE_DEVICE = "DELETE FROM devices WHERE user_id = $1 AND device_id = $2"


async def delete_device(conn: asyncpg.Connection, user_id: str, device_id: str) -> None:
    """Delete one device and, through the foreign key, its access tokens."""
    await conn.execute(DELETE_DEVICE, user_id, device_id)


DELETE_USER_DEVICES = "DELETE FROM devices WHERE user_id = $1"


async def delete_user_devices(conn: asyncpg.Connection, user_id: str) -> None:
    """Delete every device of the user and so every one of their access tokens."""
    await conn.execute(DELETE_USER_DEVICES, user_id)


UPDATE_DEVICE_LAST_SEEN = """
UPDATE devices SET last_seen_ts = $3, last_seen_ip = $4 WHERE user_id = $1 AND device_id = $2
"""


async def update_device_last_seen(
    conn: asyncpg.Connection, user_id: str, device_id: str, ts: int, ip: str
) -> None:
    await conn.execute(UPDATE_DEVICE_LAST_SEEN, user_id, device_id, ts, ip)


INSERT_ACCESS_TOKEN = """
INSERT INTO access_tokens (token_hash, user_id, device_id, created_ts) VALUES ($1, $2, $3, $4)
"""


async def insert_access_token(
    conn: asyncpg.Connection, token_hash: bytes, user_id: str, device_id: str, created_ts: int
) -> None:
    await conn.execute(INSERT_ACCESS_TOKEN, token_hash, user_id, device_id, created_ts)


DELETE_DEVICE_TOKENS = "DELETE FROM access_tokens WHERE user_id = $1 AND device_id = $2"


async def delete_device_tokens(conn: asyncpg.Connection, user_id: str, device_id: str) -> None:
    """Revoke the device's tokens but keep the device (a re-login on the same device ID)."""
    await conn.execute(DELETE_DEVICE_TOKENS, user_id, device_id)


GET_TOKEN_OWNER = """
SELECT t.user_id, t.device_id, u.is_admin, u.deactivated
FROM access_tokens t JOIN users u USING (user_id)
WHERE t.token_hash = $1
"""


async def get_token_owner(conn: asyncpg.Connection, token_hash: bytes) -> asyncpg.Record | None:
    """(user_id, device_id, is_admin, deactivated) of the token, or None if unknown."""
    return await conn.fetchrow(GET_TOKEN_OWNER, token_hash)


INSERT_PROFILE = "INSERT INTO profiles (user_id, displayname) VALUES ($1, $2)"


async def insert_profile(conn: asyncpg.Connection, user_id: str, displayname: str | None) -> None:
    await conn.execute(INSERT_PROFILE, user_id, displayname)


GET_PROFILE = "SELECT displayname, avatar_url FROM profiles WHERE user_id = $1"


async def get_profile(conn: asyncpg.Connection, user_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_PROFILE, user_id)


UPDATE_DISPLAYNAME = "UPDATE profiles SET displayname = $2 WHERE user_id = $1"


async def update_displayname(conn: asyncpg.Connection, user_id: str, displayname: str) -> None:
    await conn.execute(UPDATE_DISPLAYNAME, user_id, displayname)


UPDATE_AVATAR_URL = "UPDATE profiles SET avatar_url = $2 WHERE user_id = $1"


async def update_avatar_url(conn: asyncpg.Connection, user_id: str, avatar_url: str) -> None:
    await conn.execute(UPDATE_AVATAR_URL, user_id, avatar_url)
