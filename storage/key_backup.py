"""The `e2e_room_key_versions` and `e2e_room_keys` tables: server-side backups of room keys.

A user's backup versions are numbered from 1 and never reused: deleting a version marks it
deleted and drops its keys. The version's `etag` is bumped whenever its stored keys change.
Writers take `lock_backups` first, so numbering a new version and checking "is this still the
current version" before writing keys cannot race.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg


@dataclass(frozen=True, slots=True)
class BackupVersion:
    version: int
    algorithm: str
    auth_data: dict[str, Any]
    etag: int


@dataclass(frozen=True, slots=True)
class RoomKey:
    """One backed-up Megolm session (the spec's KeyBackupData, keyed by room and session)."""

    room_id: str
    session_id: str
    first_message_index: int
    forwarded_count: int
    is_verified: bool
    session_data: dict[str, Any]


LOCK_BACKUPS = "SELECT pg_advisory_xact_lock(hashtext('room_keys'), hashtext($1))"


async def lock_backups(conn: asyncpg.Connection, user_id: str) -> None:
    """Serialize the writers of one user's backups until the transaction ends."""
    await conn.execute(LOCK_BACKUPS, user_id)


INSERT_VERSION = """
INSERT INTO e2e_room_key_versions (user_id, version, algorithm, auth_data)
SELECT $1, coalesce(max(version), 0) + 1, $2, $3 FROM e2e_room_key_versions WHERE user_id = $1
RETURNING version
"""


async def insert_version(
    conn: asyncpg.Connection, user_id: str, algorithm: str, auth_data: dict[str, Any]
) -> int:
    """Create the next version (under `lock_backups`) and return its number."""
    version: int = await conn.fetchval(INSERT_VERSION, user_id, algorithm, auth_data)
    return version


GET_VERSION = """
SELECT version, algorithm, auth_data, etag FROM e2e_room_key_versions
WHERE user_id = $1 AND version = $2 AND NOT deleted
"""
GET_LATEST_VERSION = """
SELECT version, algorithm, auth_data, etag FROM e2e_room_key_versions
WHERE user_id = $1 AND NOT deleted ORDER BY version DESC LIMIT 1
"""


async def get_version(
    conn: asyncpg.Connection, user_id: str, version: int | None
) -> BackupVersion | None:
    """The live version `version`, or the latest live one when `version` is None."""
    if version is None:
        row = await conn.fetchrow(GET_LATEST_VERSION, user_id)
    else:
        row = await conn.fetchrow(GET_VERSION, user_id, version)
    if row is None:
        return None
    return BackupVersion(row["version"], row["algorithm"], row["auth_data"], row["etag"])


UPDATE_AUTH_DATA = """
UPDATE e2e_room_key_versions SET auth_data = $3 WHERE user_id = $1 AND version = $2
"""


async def update_auth_data(
    conn: asyncpg.Connection, user_id: str, version: int, auth_data: dict[str, Any]
) -> None:
    await conn.execute(UPDATE_AUTH_DATA, user_id, version, auth_data)


MARK_VERSION_DELETED = """
UPDATE e2e_room_key_versions SET deleted = true WHERE user_id = $1 AND version = $2
RETURNING version
"""


async def delete_version(conn: asyncpg.Connection, user_id: str, version: int) -> bool:
    """Mark the version deleted and drop its keys; False if it never existed."""
    if await conn.fetchval(MARK_VERSION_DELETED, user_id, version) is None:
        return False
    await delete_keys(conn, user_id, version, None, None)
    return True


BUMP_ETAG = """
UPDATE e2e_room_key_versions SET etag = etag + 1 WHERE user_id = $1 AND version = $2
RETURNING etag
"""


async def bump_etag(conn: asyncpg.Connection, user_id: str, version: int) -> int:
    """Mark the version's keys as changed; the new etag."""
    etag: int = await conn.fetchval(BUMP_ETAG, user_id, version)
    return etag


# The spec's rule for a session already stored: a verified key beats an unverified one, then the
# lower first_message_index wins, then the lower forwarded_count; a tie keeps the stored key.
# The row comparison is lexicographic, which is exactly that order.
UPSERT_KEYS = """
INSERT INTO e2e_room_keys AS old (user_id, version, room_id, session_id, first_message_index,
                                  forwarded_count, is_verified, session_data)
SELECT $1, $2, k.room_id, k.session_id, k.first_message_index, k.forwarded_count,
       k.is_verified, k.session_data
FROM unnest($3::text[], $4::text[], $5::integer[], $6::integer[], $7::boolean[], $8::jsonb[])
     AS k (room_id, session_id, first_message_index, forwarded_count, is_verified, session_data)
ON CONFLICT (user_id, version, room_id, session_id) DO UPDATE
SET first_message_index = EXCLUDED.first_message_index,
    forwarded_count = EXCLUDED.forwarded_count,
    is_verified = EXCLUDED.is_verified,
    session_data = EXCLUDED.session_data
WHERE (NOT EXCLUDED.is_verified, EXCLUDED.first_message_index, EXCLUDED.forwarded_count)
    < (NOT old.is_verified, old.first_message_index, old.forwarded_count)
"""


async def upsert_keys(
    conn: asyncpg.Connection, user_id: str, version: int, keys: list[RoomKey]
) -> int:
    """Store new sessions and better keys for stored ones; how many rows changed."""
    status: str = await conn.execute(
        UPSERT_KEYS, user_id, version,
        [k.room_id for k in keys], [k.session_id for k in keys],
        [k.first_message_index for k in keys], [k.forwarded_count for k in keys],
        [k.is_verified for k in keys], [k.session_data for k in keys],
    )
    return int(status.rsplit(" ", 1)[1])


# A NULL room or session ID matches every room or session: one statement serves all three
# levels of the API.
GET_KEYS = """
SELECT room_id, session_id, first_message_index, forwarded_count, is_verified, session_data
FROM e2e_room_keys
WHERE user_id = $1 AND version = $2
  AND ($3::text IS NULL OR room_id = $3) AND ($4::text IS NULL OR session_id = $4)
ORDER BY room_id, session_id
"""
DELETE_KEYS = """
DELETE FROM e2e_room_keys
WHERE user_id = $1 AND version = $2
  AND ($3::text IS NULL OR room_id = $3) AND ($4::text IS NULL OR session_id = $4)
"""


async def get_keys(
    conn: asyncpg.Connection, user_id: str, version: int, room_id: str | None,
    session_id: str | None,
) -> list[RoomKey]:
    rows = await conn.fetch(GET_KEYS, user_id, version, room_id, session_id)
    return [
        RoomKey(r["room_id"], r["session_id"], r["first_message_index"], r["forwarded_count"],
                r["is_verified"], r["session_data"])
        for r in rows
    ]


async def delete_keys(
    conn: asyncpg.Connection, user_id: str, version: int, room_id: str | None,
    session_id: str | None,
) -> int:
    """Delete the matching keys; how many there were."""
    status: str = await conn.execute(DELETE_KEYS, user_id, version, room_id, session_id)
    return int(status.rsplit(" ", 1)[1])


COUNT_USER_KEYS = "SELECT count(*) FROM e2e_room_keys WHERE user_id = $1"


async def count_user_keys(conn: asyncpg.Connection, user_id: str) -> int:
    """The user's stored keys in every version together."""
    count: int = await conn.fetchval(COUNT_USER_KEYS, user_id)
    return count


COUNT_KEYS = "SELECT count(*) FROM e2e_room_keys WHERE user_id = $1 AND version = $2"


async def count_keys(conn: asyncpg.Connection, user_id: str, version: int) -> int:
    count: int = await conn.fetchval(COUNT_KEYS, user_id, version)
    return count
