"""The `uia_sessions` table: User-Interactive Authentication sessions in progress.

A session lives in PostgreSQL (not in one process's memory) so that a client whose next
request reaches another worker carries on where it left off. Expired rows are swept when new
sessions start; reads ignore them meanwhile.
"""

from __future__ import annotations

from typing import Any

import asyncpg

INSERT_SESSION = """
INSERT INTO uia_sessions (session_id, user_id, method, path, expires_ts) VALUES ($1, $2, $3, $4, $5)
"""


async def insert_session(
    conn: asyncpg.Connection, session_id: str, user_id: str | None, method: str, path: str,
    expires_ts: int,
) -> None:
    await conn.execute(INSERT_SESSION, session_id, user_id, method, path, expires_ts)


GET_SESSION = """
SELECT session_id, user_id, method, path, completed, completed_hash, params, password_hash,
       registered_user_id, registration_token
FROM uia_sessions
WHERE session_id = $1 AND expires_ts > $2
"""


async def get_session(
    conn: asyncpg.Connection, session_id: str, now: int
) -> asyncpg.Record | None:
    """A live session (every column but the expiry), or None."""
    return await conn.fetchrow(GET_SESSION, session_id, now)


COMPLETE_STAGE = """
UPDATE uia_sessions
SET completed = array_append(completed, $3), user_id = $2, completed_hash = $4
WHERE session_id = $1 AND NOT ($3 = ANY(completed))
"""


async def complete_stage(
    conn: asyncpg.Connection, session_id: str, user_id: str | None, stage: str,
    completed_hash: bytes,
) -> None:
    """Record `stage` as done, by `user_id` (who the session now authenticates), for the
    request whose digest is `completed_hash`."""
    await conn.execute(COMPLETE_STAGE, session_id, user_id, stage, completed_hash)


UPDATE_REGISTRATION = """
UPDATE uia_sessions SET params = $2, password_hash = COALESCE($3, password_hash)
WHERE session_id = $1
"""


async def update_registration(
    conn: asyncpg.Connection, session_id: str, params: dict[str, Any],
    password_hash: str | None,
) -> None:
    """Remember a registration's parameters, and the password's hash if one was given."""
    await conn.execute(UPDATE_REGISTRATION, session_id, params, password_hash)


SET_REGISTERED_USER = """
WITH held AS (
    SELECT session_id, registration_token FROM uia_sessions WHERE session_id = $1 FOR UPDATE
)
UPDATE uia_sessions s SET registered_user_id = $2, registration_token = NULL
FROM held WHERE s.session_id = held.session_id
RETURNING held.registration_token
"""


async def set_registered_user(
    conn: asyncpg.Connection, session_id: str, user_id: str
) -> str | None:
    """Record whom the session registered; the registration token whose pending use it held
    (it holds none from now on: the use is the caller's to complete), if any."""
    token: str | None = await conn.fetchval(SET_REGISTERED_USER, session_id, user_id)
    return token


HOLD_REGISTRATION_TOKEN = """
UPDATE uia_sessions SET registration_token = $2
WHERE session_id = $1 AND registration_token IS NULL AND registered_user_id IS NULL
"""


async def hold_registration_token(conn: asyncpg.Connection, session_id: str, token: str) -> bool:
    """The session holds a pending use of `token` (to be claimed in the same transaction);
    False when it holds one already (or registered), and nothing changed."""
    status: str = await conn.execute(HOLD_REGISTRATION_TOKEN, session_id, token)
    return status != "UPDATE 0"


DELETE_EXPIRED_SESSIONS = "DELETE FROM uia_sessions WHERE expires_ts <= $1"


async def delete_expired_sessions(conn: asyncpg.Connection, now: int) -> None:
    await conn.execute(DELETE_EXPIRED_SESSIONS, now)
