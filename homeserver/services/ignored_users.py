"""Ignoring users (Client-Server API "Ignoring Users"): whom a user ignores.

The list is the `ignored_users` object of the user's global `m.ignored_user_list` account
data, read afresh by every request that filters by it, so a change takes effect on the next
/sync, /messages or /context. A malformed entry (clients write account data as they like)
ignores nobody rather than failing the reads.
"""

from __future__ import annotations

import asyncpg

from storage import account_data as account_data_store

IGNORED_USER_LIST = "m.ignored_user_list"


async def ignored_users(conn: asyncpg.Connection, user_id: str) -> frozenset[str]:
    content = await account_data_store.get_account_data(conn, user_id, "", IGNORED_USER_LIST)
    listed = content.get("ignored_users") if isinstance(content, dict) else None
    if not isinstance(listed, dict):
        return frozenset()
    return frozenset(u for u in listed if u != user_id)
