"""Other servers' media, fetched for local users and kept on disk (spec: server-server-api.md
"Content Repository"; client-server-api "Content repository", authenticated downloads).

Theory of operation. A download of `mxc://<other server>/<id>` first looks in
`remote_media`; a hit is served from the shared content store (and its access recorded, at
most once a minute, for eviction). A miss fetches the item through `RemoteMedia` (federation)
and writes it into the content store as it arrives, so equal bytes held as local media or
under another remote ID are one file. Then:

- Concurrent requests for the same item share one fetch (`SingleFlight`): a requester who
  goes away does not stop the fetch the others wait for. At most `MAX_FETCHES` items are
  fetched at once; more answer 429.
- Each item is bounded by `media.max_upload_bytes`: past it the fetch stops and answers
  502 M_TOO_LARGE (Synapse's answer, and the spec's for remote content too large to serve).
- The cache is bounded by `media.remote_cache_max_bytes`: after each fetch the least
  recently used items beyond it are evicted (their files removed unless something else uses
  the same bytes); the item just fetched stays, to be served.
- Which other servers a user makes this server contact counts against the user's limits
  (`remote_server_limits`), as for keys and profiles.
"""

from __future__ import annotations

import asyncpg

from homeserver.config import MediaConfig
from homeserver.services.clock import Clock
from homeserver.services.media_files import ACCESS_GRANULARITY_MS, MediaFiles
from homeserver.services.remote_media import RemoteMedia, remote_too_large
from homeserver.services.remote_server_limits import ServerLimits
from homeserver.services.single_flight import SingleFlight
from storage import remote_media as store
from storage.remote_media import RemoteMediaRow

# Items fetched at once from other servers (each holds a connection and a temporary file).
MAX_FETCHES = 64


class RemoteMediaCache:
    def __init__(
        self, files: MediaFiles, remote: RemoteMedia, server_limits: ServerLimits,
        config: MediaConfig, clock: Clock,
    ) -> None:
        self.files = files
        self.remote = remote
        self.server_limits = server_limits
        self.max_bytes = config.max_upload_bytes
        self.cache_max_bytes = config.remote_cache_max_bytes
        self.clock = clock
        self._inflight: SingleFlight[tuple[str, str], RemoteMediaRow] = SingleFlight(
            MAX_FETCHES, "remote media fetches"
        )

    async def get(
        self, user_id: str, server_name: str, media_id: str, timeout_ms: int
    ) -> RemoteMediaRow:
        """The cached item, fetched first if it is not cached."""
        async def read(conn: asyncpg.Connection) -> RemoteMediaRow | None:
            return await store.get_remote_media(conn, server_name, media_id)

        row = await self.files.db.run(read, name="remote_media_get")
        if row is not None:
            await self._touch(row)
            return row
        await self.server_limits.admit(user_id, [server_name])
        return await self._inflight.run(
            (server_name, media_id), lambda: self._fetch(server_name, media_id, timeout_ms)
        )

    async def _fetch(self, server_name: str, media_id: str, timeout_ms: int) -> RemoteMediaRow:
        async with self.remote.download(
            server_name, media_id, self.max_bytes, timeout_ms
        ) as download:
            staged = await self.files.content.stage_stream(
                download.chunks, self.max_bytes, refuse=remote_too_large
            )
        now = self.clock.now_ms()
        row = RemoteMediaRow(
            server_name, media_id, staged.content_hash, download.content_type,
            download.upload_name, staged.size, now,
        )

        async def insert(conn: asyncpg.Connection) -> RemoteMediaRow:
            await store.insert_remote_media(conn, row, now)
            kept = await store.get_remote_media(conn, server_name, media_id)
            assert kept is not None
            return kept

        kept = await self.files.commit([staged], insert, name="remote_media_insert")
        await self._evict(kept)
        return kept

    async def _evict(self, keep: RemoteMediaRow) -> None:
        async def evict(conn: asyncpg.Connection) -> None:
            evicted = await store.evict_remote_media(
                conn, self.cache_max_bytes, keep.server_name, keep.media_id
            )
            if evicted:
                await self.files.release(conn, evicted)

        await self.files.db.transaction(evict, name="remote_media_evict")

    async def _touch(self, row: RemoteMediaRow) -> None:
        now = self.clock.now_ms()
        if now - row.last_access_ts < ACCESS_GRANULARITY_MS:
            return

        async def touch(conn: asyncpg.Connection) -> None:
            await store.touch_remote_media(
                conn, row.server_name, row.media_id, now, ACCESS_GRANULARITY_MS
            )

        await self.files.db.run(touch, name="remote_media_touch")
