"""The `profiles` table (displayname, avatar_url and the other fields of spec v1.16) and the
`profile_member_updates` queue of users whose member events lag behind their profile.

A profile change and its queue entry commit together, so no change is ever left without the
member events that announce it; the queue's reader deletes an entry only at the generation it
brought up to date.
"""

from __future__ import annotations

from typing import Any

import asyncpg

GET_PROFILE = "SELECT displayname, avatar_url, fields FROM profiles WHERE user_id = $1"
GET_PROFILE_FOR_UPDATE = GET_PROFILE + " FOR UPDATE"


async def get_profile(
    conn: asyncpg.Connection, user_id: str, *, for_update: bool = False
) -> asyncpg.Record | None:
    """The user's profile row; `for_update` locks it until the transaction ends (a change
    reads, checks the size of, and writes the whole profile)."""
    return await conn.fetchrow(GET_PROFILE_FOR_UPDATE if for_update else GET_PROFILE, user_id)


UPDATE_PROFILE = """
UPDATE profiles SET displayname = $2, avatar_url = $3, fields = $4 WHERE user_id = $1
"""


async def update_profile(
    conn: asyncpg.Connection, user_id: str, displayname: str | None, avatar_url: str | None,
    fields: dict[str, Any],
) -> None:
    """Replace the whole profile (None: that field is unset)."""
    await conn.execute(UPDATE_PROFILE, user_id, displayname, avatar_url, fields)


QUEUE_MEMBER_UPDATE = """
INSERT INTO profile_member_updates (user_id, queued_ts) VALUES ($1, $2)
ON CONFLICT (user_id) DO UPDATE
SET generation = profile_member_updates.generation + 1, queued_ts = excluded.queued_ts
"""


async def queue_member_update(conn: asyncpg.Connection, user_id: str, now: int) -> None:
    """Note that the user's member events must catch up with their profile."""
    await conn.execute(QUEUE_MEMBER_UPDATE, user_id, now)


GET_MEMBER_UPDATES = """
SELECT user_id, generation FROM profile_member_updates ORDER BY queued_ts, user_id LIMIT $1
"""


async def get_member_updates(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    """The longest-waiting users of the queue, with the generation each is at."""
    return list(await conn.fetch(GET_MEMBER_UPDATES, limit))


DELETE_MEMBER_UPDATE = """
DELETE FROM profile_member_updates WHERE user_id = $1 AND generation = $2
"""


async def delete_member_update(conn: asyncpg.Connection, user_id: str, generation: int) -> bool:
    """Drop the user's entry if no change came since `generation`; False if one did."""
    status: str = await conn.execute(DELETE_MEMBER_UPDATE, user_id, generation)
    return status.endswith(" 1")
