"""`remote_device_keys`: the last answer another server gave about one of its users' keys,
what /keys/query answers with while that server cannot be reached. Only users who share a
joined room with a local user are kept (`get_users_sharing_with_local`), so what outsiders can
make us store is bounded by the rooms our users are in.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg

UPSERT_KEYS = """
INSERT INTO remote_device_keys (user_id, keys, fetched_ts) VALUES ($1, $2, $3)
ON CONFLICT (user_id) DO UPDATE SET keys = EXCLUDED.keys, fetched_ts = EXCLUDED.fetched_ts
"""


async def upsert_keys(
    conn: asyncpg.Connection, user_id: str, keys: dict[str, Any], fetched_ts: int
) -> None:
    await conn.execute(UPSERT_KEYS, user_id, json.dumps(keys), fetched_ts)


GET_KEYS = "SELECT user_id, keys FROM remote_device_keys WHERE user_id = ANY($1)"


async def get_keys(
    conn: asyncpg.Connection, user_ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """user ID -> the kept answer, for those of `user_ids` we keep one of."""
    rows = await conn.fetch(GET_KEYS, list(user_ids))
    return {r["user_id"]: json.loads(r["keys"]) for r in rows}


GET_USERS_SHARING_WITH_LOCAL = """
SELECT DISTINCT theirs.user_id
FROM room_memberships theirs JOIN room_memberships mine USING (room_id)
JOIN users ON users.user_id = mine.user_id
WHERE theirs.user_id = ANY($1) AND theirs.membership = 'join' AND mine.membership = 'join'
"""


async def get_users_sharing_with_local(
    conn: asyncpg.Connection, user_ids: Sequence[str]
) -> set[str]:
    """Those of `user_ids` joined to a room a local user is joined to."""
    rows = await conn.fetch(GET_USERS_SHARING_WITH_LOCAL, list(user_ids))
    return {r["user_id"] for r in rows}
