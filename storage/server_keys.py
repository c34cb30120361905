"""The `server_verify_keys` and `server_key_responses` tables: other servers' signing keys.

The keyring writes here only what passed its checks, and decides in one transaction whether a
response is newer than what is stored (:func:`upsert_key_response`) and so whether its keys
overwrite the stored ones or only add the ones not yet known.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class StoredVerifyKey:
    server_name: str
    key_id: str
    verify_key: str  # unpadded base64
    valid_until_ts: int
    expired_ts: int | None  # set for keys the server lists as old


@dataclass(frozen=True, slots=True)
class StoredKeyResponse:
    server_name: str
    valid_until_ts: int
    fetched_ts: int
    response: str  # canonical JSON with the server's own signatures


@dataclass(frozen=True, slots=True)
class NewVerifyKey:
    """A checked key to store (what the keyring hands down)."""

    key_id: str
    verify_key: str
    valid_until_ts: int
    expired_ts: int | None


GET_VERIFY_KEY = """
SELECT server_name, key_id, verify_key, valid_until_ts, expired_ts
FROM server_verify_keys WHERE server_name = $1 AND key_id = $2
"""


async def get_verify_key(
    conn: asyncpg.Connection, server_name: str, key_id: str
) -> StoredVerifyKey | None:
    row = await conn.fetchrow(GET_VERIFY_KEY, server_name, key_id)
    return StoredVerifyKey(**dict(row)) if row is not None else None


GET_KEY_RESPONSE = """
SELECT server_name, valid_until_ts, fetched_ts, response
FROM server_key_responses WHERE server_name = $1
"""


async def get_key_response(
    conn: asyncpg.Connection, server_name: str
) -> StoredKeyResponse | None:
    row = await conn.fetchrow(GET_KEY_RESPONSE, server_name)
    return StoredKeyResponse(**dict(row)) if row is not None else None


# Written only when at least as new as the stored one (by its own valid_until_ts), so an old
# response a notary still holds never replaces what the server itself told us since.
UPSERT_KEY_RESPONSE = """
INSERT INTO server_key_responses (server_name, valid_until_ts, fetched_ts, fetched_from, response)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (server_name) DO UPDATE SET
    valid_until_ts = EXCLUDED.valid_until_ts, fetched_ts = EXCLUDED.fetched_ts,
    fetched_from = EXCLUDED.fetched_from, response = EXCLUDED.response
WHERE server_key_responses.valid_until_ts <= EXCLUDED.valid_until_ts
RETURNING true
"""


async def upsert_key_response(
    conn: asyncpg.Connection, server_name: str, valid_until_ts: int, fetched_ts: int,
    fetched_from: str, response: str,
) -> bool:
    """Store the response unless a newer one is stored; True if it was written."""
    written = await conn.fetchval(
        UPSERT_KEY_RESPONSE, server_name, valid_until_ts, fetched_ts, fetched_from, response
    )
    return written is True


UPSERT_VERIFY_KEY = """
INSERT INTO server_verify_keys
    (server_name, key_id, verify_key, valid_until_ts, expired_ts, fetched_ts, fetched_from)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (server_name, key_id) DO UPDATE SET
    verify_key = EXCLUDED.verify_key, valid_until_ts = EXCLUDED.valid_until_ts,
    expired_ts = EXCLUDED.expired_ts, fetched_ts = EXCLUDED.fetched_ts,
    fetched_from = EXCLUDED.fetched_from
"""

INSERT_VERIFY_KEY = """
INSERT INTO server_verify_keys
    (server_name, key_id, verify_key, valid_until_ts, expired_ts, fetched_ts, fetched_from)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (server_name, key_id) DO NOTHING
"""


async def upsert_verify_keys(
    conn: asyncpg.Connection, server_name: str, keys: Iterable[NewVerifyKey], fetched_ts: int,
    fetched_from: str, *, overwrite: bool,
) -> None:
    """Store keys; with ``overwrite`` False, keys already stored are left as they are."""
    rows = [
        (server_name, k.key_id, k.verify_key, k.valid_until_ts, k.expired_ts, fetched_ts,
         fetched_from)
        for k in keys
    ]
    if rows:
        await conn.executemany(UPSERT_VERIFY_KEY if overwrite else INSERT_VERIFY_KEY, rows)
