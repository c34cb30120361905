"""Media files and the rows that use them, kept consistent: placing a file with the row that
starts using it, and removing files no row uses any more.

Shared by local media (`media.py`) and the cache of other servers' media
(`remote_media_cache.py`), which keep their bytes in one content store, so equal bytes are one
file whichever of them holds it. Every change holds the files' locks (`storage.media.
lock_contents`): a file is placed in the transaction that inserts its row, and removed only in
a transaction that saw no row (local, remote or thumbnail) still using it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import asyncpg

from homeserver.errors import not_found
from homeserver.services.media_store import ContentStore, Staged
from storage import media as store
from storage.database import Database

T = TypeVar("T")

# Downloads of one item (local or another server's) within this long record one access
# (`last_access_ts`, what retention and the remote cache's eviction go by).
ACCESS_GRANULARITY_MS = 60_000


class MediaFiles:
    def __init__(self, db: Database, content: ContentStore) -> None:
        self.db = db
        self.content = content

    async def commit(
        self, staged: list[Staged], fn: Callable[[asyncpg.Connection], Awaitable[T]], *,
        name: str, also_lock: list[str] | None = None,
    ) -> T:
        """Run `fn` (which inserts the rows using the staged files) and place the files in
        one transaction holding the files' locks, so no deletion removes a file in between;
        nothing is placed if `fn` raises."""
        hashes = [s.content_hash for s in staged] + (also_lock or [])

        async def run(conn: asyncpg.Connection) -> T:
            await store.lock_contents(conn, hashes)
            result = await fn(conn)
            for file in staged:
                await asyncio.to_thread(self.content.place, file)
            return result

        try:
            return await self.db.transaction(run, name=name)
        finally:
            for file in staged:
                await asyncio.to_thread(self.content.discard, file)

    async def release(self, conn: asyncpg.Connection, sources: list[str]) -> None:
        """After rows using `sources` were deleted (in this transaction): forget the
        thumbnails of those no row uses any more, and remove the files nothing uses."""
        sources = sorted(set(sources))
        await store.lock_contents(conn, sources)
        unused = sorted(set(sources) - await store.get_contents_in_use(conn, sources))
        thumbnails = await store.delete_thumbnails(conn, unused)
        await store.lock_contents(conn, sorted(thumbnails - set(sources)))
        candidates = sorted(set(unused) | thumbnails)
        doomed = set(candidates) - await store.get_files_in_use(conn, candidates)
        for content_hash in doomed:
            await asyncio.to_thread(self.content.remove, content_hash)

    async def existing(self, content_hash: str) -> Path:
        """The file of `content_hash`; 404 if it went missing from disk (an operator's doing,
        or an eviction of the remote cache meanwhile)."""
        path = self.content.path_of(content_hash)
        if not await asyncio.to_thread(path.is_file):
            raise not_found("The content of this media is no longer stored")
        return path
