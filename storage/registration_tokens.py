"""The `registration_tokens` table: tokens that admit a registration (the spec's
`m.login.registration_token` stage), with their counts of pending and completed uses.

A use is claimed by one conditional UPDATE, so the row lock decides between registrations
racing for a token's last use: PostgreSQL re-checks the condition on the row the winner
committed, and the loser's UPDATE matches nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class RegistrationToken:
    token: str
    uses_allowed: int | None  # None: unlimited
    pending: int
    completed: int
    expiry_time: int | None  # ms since the epoch; None: never expires


COLUMNS = "token, uses_allowed, pending, completed, expiry_time"

# Whether a row is valid at $1 (ms), as SQL over the row's columns.
VALID = (
    "(uses_allowed IS NULL OR pending + completed < uses_allowed)"
    " AND (expiry_time IS NULL OR expiry_time > $1)"
)


def _token(row: asyncpg.Record) -> RegistrationToken:
    return RegistrationToken(
        row["token"], row["uses_allowed"], row["pending"], row["completed"], row["expiry_time"]
    )


INSERT_TOKEN = f"""
INSERT INTO registration_tokens (token, uses_allowed, expiry_time) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING
RETURNING {COLUMNS}
"""


async def insert_token(
    conn: asyncpg.Connection, token: str, uses_allowed: int | None, expiry_time: int | None
) -> RegistrationToken | None:
    """The new token; None when the token exists already."""
    row = await conn.fetchrow(INSERT_TOKEN, token, uses_allowed, expiry_time)
    return None if row is None else _token(row)


GET_TOKEN = f"SELECT {COLUMNS} FROM registration_tokens WHERE token = $1"


async def get_token(conn: asyncpg.Connection, token: str) -> RegistrationToken | None:
    row = await conn.fetchrow(GET_TOKEN, token)
    return None if row is None else _token(row)


GET_TOKENS = f"""
SELECT {COLUMNS} FROM registration_tokens
WHERE $2::boolean IS NULL OR ({VALID}) = $2
ORDER BY token
"""


async def get_tokens(
    conn: asyncpg.Connection, now: int, valid: bool | None
) -> list[RegistrationToken]:
    """Every token, or (`valid`) only those that are valid at `now`, or only those that
    are not."""
    return [_token(row) for row in await conn.fetch(GET_TOKENS, now, valid)]


UPDATE_TOKEN = f"""
UPDATE registration_tokens SET
    uses_allowed = CASE WHEN $2 THEN $3 ELSE uses_allowed END,
    expiry_time = CASE WHEN $4 THEN $5 ELSE expiry_time END
WHERE token = $1
RETURNING {COLUMNS}
"""


async def update_token(
    conn: asyncpg.Connection, token: str, uses_allowed: tuple[int | None] | None,
    expiry_time: tuple[int | None] | None,
) -> RegistrationToken | None:
    """Change the fields given (a 1-tuple holding the new value, None: unchanged); the
    token as it is now, or None when there is no such token."""
    row = await conn.fetchrow(
        UPDATE_TOKEN, token,
        uses_allowed is not None, None if uses_allowed is None else uses_allowed[0],
        expiry_time is not None, None if expiry_time is None else expiry_time[0],
    )
    return None if row is None else _token(row)


DELETE_TOKEN = "DELETE FROM registration_tokens WHERE token = $1"


async def delete_token(conn: asyncpg.Connection, token: str) -> bool:
    """Whether there was such a token."""
    status: str = await conn.execute(DELETE_TOKEN, token)
    return status != "DELETE 0"


IS_VALID = f"SELECT EXISTS (SELECT FROM registration_tokens WHERE token = $2 AND {VALID})"


async def is_valid(conn: asyncpg.Connection, token: str, now: int) -> bool:
    valid: bool = await conn.fetchval(IS_VALID, now, token)
    return valid


CLAIM_USE = f"""
UPDATE registration_tokens SET pending = pending + 1
WHERE token = $2 AND {VALID}
RETURNING token
"""


async def claim_use(conn: asyncpg.Connection, token: str, now: int) -> bool:
    """Take a pending use of the token if it is valid at `now`; whether it was."""
    return await conn.fetchval(CLAIM_USE, now, token) is not None


COMPLETE_USE = """
UPDATE registration_tokens SET pending = pending - 1, completed = completed + 1
WHERE token = $1 AND pending > 0
"""


async def complete_use(conn: asyncpg.Connection, token: str) -> None:
    """A pending use became a registration."""
    await conn.execute(COMPLETE_USE, token)


# Reads `uia_sessions` (the sessions holding uses) so that giving them back and deleting the
# sessions happen in one transaction.
RELEASE_USES_OF_EXPIRED_SESSIONS = """
UPDATE registration_tokens t SET pending = greatest(t.pending - held.uses, 0)
FROM (
    SELECT registration_token, count(*) AS uses FROM uia_sessions
    WHERE expires_ts <= $1 AND registration_token IS NOT NULL
    GROUP BY registration_token
) held
WHERE t.token = held.registration_token
"""


async def release_uses_of_expired_sessions(conn: asyncpg.Connection, now: int) -> None:
    """Give back the pending uses held by sessions that expired before registering (their
    rows are to be deleted in the same transaction)."""
    await conn.execute(RELEASE_USES_OF_EXPIRED_SESSIONS, now)
