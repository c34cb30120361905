"""Ignoring users (Client-Server API "Ignoring Users"): whom a user ignores.

The list is the `ignored_users` object of the user's global `m.ignored_user_list` account
data, read afresh by every request that filters by it, so a change takes effect on the next
/sync, /messages or /context. A malformed entry (clients write account data as they like)
ignores nobody rather than failing the reads.

The push rules need the lists of every member of a room for every event (an ignored user's
messages notify nobody who ignores them), so `IgnoreLists` holds them in memory, filled on a
miss (one query for all the members missing) and dropped by `AccountDataService` after it
commits a change to a user's list. It is consulted only where account data is written (the
main process), since that is the only process that learns of the changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from homeserver.services.fill_cache import FillCache
from storage import account_data as account_data_store

IGNORED_USER_LIST = "m.ignored_user_list"
CACHED_LISTS = 100_000


def _listed(content: Any, user_id: str) -> frozenset[str]:
    listed = content.get("ignored_users") if isinstance(content, dict) else None
    if not isinstance(listed, dict):
        return frozenset()
    return frozenset(u for u in listed if u != user_id)


async def ignored_users(conn: asyncpg.Connection, user_id: str) -> frozenset[str]:
    content = await account_data_store.get_account_data(conn, user_id, "", IGNORED_USER_LIST)
    return _listed(content, user_id)


class IgnoreLists:
    """Whom each user ignores, cached (see the module docstring)."""

    def __init__(self, size: int = CACHED_LISTS) -> None:
        self._lists: FillCache[str, frozenset[str]] = FillCache("ignored_users", size)

    async def of(
        self, conn: asyncpg.Connection, user_ids: Sequence[str]
    ) -> dict[str, frozenset[str]]:
        """user -> whom they ignore, for each of `user_ids`."""
        async def load(keys: Sequence[str]) -> dict[str, frozenset[str]]:
            contents = await account_data_store.get_global_account_data_of_users(
                conn, keys, IGNORED_USER_LIST
            )
            return {u: _listed(contents.get(u), u) for u in keys}

        return await self._lists.get_many(user_ids, load)

    def changed(self, user_id: str) -> None:
        """The user's list changed (called after the commit)."""
        self._lists.invalidate(user_id)
