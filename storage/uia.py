"""The `uia_sessions` table: User-Interactive Authentication sessions in progress.

A session lives in PostgreSQL (not in one process's memory) so that a client whose next
request reaches another worker carries on where it left off. Expired rows are swept when new
sessions start; reads ignore them meanwhile.
"""

from __future__ import annotations

import asyncpg

INSERT_SESSION = """
INSERT INTO uia_sessions (session_id, user_id, request_hash, expires_ts) VALUES ($1, $2, $3, $4)
"""


async def insert_session(
    conn: asyncpg.Connection, session_id: str, user_id: str | None, request_hash: bytes,
    expires_ts: int,
) -> None:
    await conn.execute(INSERT_SESSION, session_id, user_id, request_hash, expires_ts)


GET_SESSION = """
SELECT session_id, user_id, request_hash, completed FROM uia_sessions
WHERE session_id = $1 AND expires_ts > $2
"""


async def get_session(
    conn: asyncpg.Connection, session_id: str, now: int
) -> asyncpg.Record | None:
    """(session_id, user_id, request_hash, completed) of a live session, or None."""
    return await conn.fetchrow(GET_SESSION, session_id, now)


COMPLETE_STAGE = """
UPDATE uia_sessions
SET completed = array_append(completed, $3), user_id = $2
WHERE session_id = $1 AND NOT ($3 = ANY(completed))
"""


async def complete_stage(
    conn: asyncpg.Connection, session_id: str, user_id: str, stage: str
) -> None:
    """Record `stage` as done, by `user_id` (who the session now authenticates)."""
    await conn.execute(COMPLETE_STAGE, session_id, user_id, stage)


DELETE_EXPIRED_SESSIONS = "DELETE FROM uia_sessions WHERE expires_ts <= $1"


async def delete_expired_sessions(conn: asyncpg.Connection, now: int) -> None:
    await conn.execute(DELETE_EXPIRED_SESSIONS, now)
