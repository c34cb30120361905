"""The end-to-end key tables: device keys, one-time and fallback keys, cross-signing keys and
the signatures other keys made over them.

The server keeps every key as the opaque signed JSON the client uploaded (jsonb compares and
returns it as the same JSON object, so signatures over its canonical form still verify).
Claiming a one-time key deletes exactly one row with `FOR UPDATE SKIP LOCKED`, so concurrent
claims never hand out the same key twice and never wait on each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

# ---- device keys ------------------------------------------------------------------------------

GET_DEVICE_KEYS = "SELECT key_json FROM e2e_device_keys WHERE user_id = $1 AND device_id = $2"


async def get_device_keys(
    conn: asyncpg.Connection, user_id: str, device_id: str
) -> dict[str, Any] | None:
    value: dict[str, Any] | None = await conn.fetchval(GET_DEVICE_KEYS, user_id, device_id)
    return value


UPSERT_DEVICE_KEYS = """
INSERT INTO e2e_device_keys (user_id, device_id, key_json, updated_ts) VALUES ($1, $2, $3, $4)
ON CONFLICT (user_id, device_id) DO UPDATE SET key_json = $3, updated_ts = $4
"""


async def upsert_device_keys(
    conn: asyncpg.Connection, user_id: str, device_id: str, key_json: dict[str, Any], ts: int
) -> None:
    await conn.execute(UPSERT_DEVICE_KEYS, user_id, device_id, key_json, ts)


GET_USERS_DEVICE_KEYS = """
SELECT k.user_id, k.device_id, k.key_json, d.display_name
FROM e2e_device_keys k JOIN devices d USING (user_id, device_id)
WHERE k.user_id = ANY($1)
ORDER BY k.user_id, k.device_id
"""


async def get_users_device_keys(
    conn: asyncpg.Connection, user_ids: Sequence[str]
) -> list[asyncpg.Record]:
    """(user_id, device_id, key_json, display_name) of every device with keys of the users."""
    return list(await conn.fetch(GET_USERS_DEVICE_KEYS, list(user_ids)))


# ---- one-time keys ----------------------------------------------------------------------------

GET_ONE_TIME_KEYS = """
SELECT algorithm, key_id, key_json FROM e2e_one_time_keys
WHERE user_id = $1 AND device_id = $2
  AND (algorithm, key_id) IN (SELECT * FROM unnest($3::text[], $4::text[]))
"""


async def get_one_time_keys(
    conn: asyncpg.Connection, user_id: str, device_id: str, ids: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], Any]:
    """(algorithm, key_id) -> stored key, for those of `ids` the device already has."""
    rows = await conn.fetch(
        GET_ONE_TIME_KEYS, user_id, device_id, [a for a, _ in ids], [k for _, k in ids]
    )
    return {(r["algorithm"], r["key_id"]): r["key_json"] for r in rows}


INSERT_ONE_TIME_KEY = """
INSERT INTO e2e_one_time_keys (user_id, device_id, algorithm, key_id, key_json)
VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING
"""


async def insert_one_time_keys(
    conn: asyncpg.Connection, user_id: str, device_id: str,
    keys: Iterable[tuple[str, str, Any]],
) -> None:
    """Store (algorithm, key_id, key) triples; a key already stored is left as it is."""
    await conn.executemany(
        INSERT_ONE_TIME_KEY, [(user_id, device_id, a, k, j) for a, k, j in keys]
    )


CLAIM_ONE_TIME_KEY = """
DELETE FROM e2e_one_time_keys WHERE ctid = (
    SELECT ctid FROM e2e_one_time_keys
    WHERE user_id = $1 AND device_id = $2 AND algorithm = $3
    ORDER BY upload_seq LIMIT 1 FOR UPDATE SKIP LOCKED
)
RETURNING key_id, key_json
"""


async def claim_one_time_key(
    conn: asyncpg.Connection, user_id: str, device_id: str, algorithm: str
) -> asyncpg.Record | None:
    """Remove and return (key_id, key_json) of the device's oldest key, or None if none left."""
    return await conn.fetchrow(CLAIM_ONE_TIME_KEY, user_id, device_id, algorithm)


# ---- fallback keys ----------------------------------------------------------------------------

UPSERT_FALLBACK_KEY = """
INSERT INTO e2e_fallback_keys (user_id, device_id, algorithm, key_id, key_json, used)
VALUES ($1, $2, $3, $4, $5, false)
ON CONFLICT (user_id, device_id, algorithm) DO UPDATE
SET key_id = $4, key_json = $5,
    used = e2e_fallback_keys.used AND e2e_fallback_keys.key_id = $4
           AND e2e_fallback_keys.key_json = $5
"""


async def upsert_fallback_key(
    conn: asyncpg.Connection, user_id: str, device_id: str, algorithm: str, key_id: str,
    key_json: Any,
) -> None:
    """Replace the algorithm's fallback key; a new key starts unused, a re-upload keeps `used`."""
    await conn.execute(UPSERT_FALLBACK_KEY, user_id, device_id, algorithm, key_id, key_json)


CLAIM_FALLBACK_KEY = """
UPDATE e2e_fallback_keys SET used = true
WHERE user_id = $1 AND device_id = $2 AND algorithm = $3
RETURNING key_id, key_json
"""


async def claim_fallback_key(
    conn: asyncpg.Connection, user_id: str, device_id: str, algorithm: str
) -> asyncpg.Record | None:
    """Mark the fallback key used and return (key_id, key_json), or None if there is none."""
    return await conn.fetchrow(CLAIM_FALLBACK_KEY, user_id, device_id, algorithm)


DELETE_ALL_ONE_TIME_KEYS = "DELETE FROM e2e_one_time_keys"
DELETE_ALL_FALLBACK_KEYS = "DELETE FROM e2e_fallback_keys"


async def delete_all_one_time_and_fallback_keys(conn: asyncpg.Connection) -> tuple[int, int]:
    """Forget every device's unclaimed one-time keys and its fallback keys, after a restore
    from a backup: devices may have handed some of them out, or replaced them, since then
    (homeserver/backup.py says why). Returns how many of each were deleted."""
    one_time = await conn.execute(DELETE_ALL_ONE_TIME_KEYS)
    fallback = await conn.execute(DELETE_ALL_FALLBACK_KEYS)
    return int(one_time.split()[-1]), int(fallback.split()[-1])


COUNT_ONE_TIME_KEYS = """
SELECT count(*) FROM e2e_one_time_keys WHERE user_id = $1 AND device_id = $2
"""


async def count_one_time_keys(conn: asyncpg.Connection, user_id: str, device_id: str) -> int:
    """Unclaimed one-time keys of one device, every algorithm together."""
    count: int = await conn.fetchval(COUNT_ONE_TIME_KEYS, user_id, device_id)
    return count


GET_KEY_COUNTS = """
SELECT device_id, algorithm, count(*)::int AS n, false AS fallback FROM e2e_one_time_keys
WHERE user_id = $1 GROUP BY device_id, algorithm
UNION ALL
SELECT device_id, algorithm, 0, true FROM e2e_fallback_keys
WHERE user_id = $1 AND NOT used
"""


@dataclass(frozen=True, slots=True)
class KeyCounts:
    one_time: dict[str, int]  # one-time keys left per algorithm
    unused_fallback: list[str]  # algorithms with an unused fallback key, sorted


async def get_key_counts(conn: asyncpg.Connection, user_id: str) -> dict[str, KeyCounts]:
    """device -> its key counts, for every device of the user that has keys, in one query."""
    out: dict[str, KeyCounts] = {}
    for row in await conn.fetch(GET_KEY_COUNTS, user_id):
        counts = out.setdefault(row["device_id"], KeyCounts({}, []))
        if row["fallback"]:
            counts.unused_fallback.append(row["algorithm"])
        else:
            counts.one_time[row["algorithm"]] = row["n"]
    for counts in out.values():
        counts.unused_fallback.sort()
    return out


# ---- cross-signing keys and signatures --------------------------------------------------------

GET_CROSS_SIGNING_KEYS = """
SELECT user_id, key_type, key_json FROM e2e_cross_signing_keys
WHERE user_id = ANY($1) AND key_type = ANY($2)
"""


async def get_cross_signing_keys(
    conn: asyncpg.Connection, user_ids: Sequence[str], key_types: Sequence[str]
) -> dict[tuple[str, str], dict[str, Any]]:
    """(user_id, key_type) -> the stored CrossSigningKey object."""
    rows = await conn.fetch(GET_CROSS_SIGNING_KEYS, list(user_ids), list(key_types))
    return {(r["user_id"], r["key_type"]): r["key_json"] for r in rows}


UPSERT_CROSS_SIGNING_KEY = """
INSERT INTO e2e_cross_signing_keys (user_id, key_type, key_json, updated_ts)
VALUES ($1, $2, $3, $4)
ON CONFLICT (user_id, key_type) DO UPDATE SET key_json = $3, updated_ts = $4
"""


async def upsert_cross_signing_key(
    conn: asyncpg.Connection, user_id: str, key_type: str, key_json: dict[str, Any], ts: int
) -> None:
    await conn.execute(UPSERT_CROSS_SIGNING_KEY, user_id, key_type, key_json, ts)


UPSERT_SIGNATURE = """
INSERT INTO e2e_signatures (target_user_id, target_key_id, signer_user_id, signer_key_id, signature)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (target_user_id, target_key_id, signer_user_id, signer_key_id)
DO UPDATE SET signature = $5
"""


async def upsert_signatures(
    conn: asyncpg.Connection, rows: Iterable[tuple[str, str, str, str, str]]
) -> None:
    """Store (target user, target key ID, signer user, signer key ID, signature) rows."""
    await conn.executemany(UPSERT_SIGNATURE, list(rows))


GET_SIGNATURES = """
SELECT target_user_id, target_key_id, signer_user_id, signer_key_id, signature
FROM e2e_signatures
WHERE target_user_id = ANY($1) AND (signer_user_id = target_user_id OR signer_user_id = $2)
"""


async def get_signatures(
    conn: asyncpg.Connection, target_user_ids: Sequence[str], viewer: str | None
) -> list[asyncpg.Record]:
    """Signatures on the users' keys that `viewer` may see: the owner's own, and the viewer's
    (None, for another server: the owner's own only)."""
    return list(await conn.fetch(GET_SIGNATURES, list(target_user_ids), viewer))
