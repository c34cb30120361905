"""The media retention sweep: local media nobody needs any more is deleted, file, thumbnails
and rows (through `MediaService.delete_local_media`, so bytes another media ID shares stay).

Two kinds go:
- media not downloaded (or, never downloaded, uploaded) for `media.retention.local_lifetime_ms`
  when that is set, as the admin API's delete-by-age with `keep_profiles` (avatars in use,
  protected and quarantined media are kept);
- media a redacted or purged event referred to (`storage.media_release` records them when the
  event is censored) that no event this server holds and no avatar refers to any more.
Other servers' cached media is not swept by age: its cache is bounded by size
(`media.remote_cache_max_bytes`, least recently used evicted; `remote_media_cache.py`).
"""

from __future__ import annotations

import functools

from homeserver.services.media import MediaService
from homeserver.services.media_admin import MediaAdmin
from homeserver.services.retention_sweeps import SweepResult
from storage import admin_media
from storage import media_release as store
from storage.database import Database

# Candidates checked per transaction: each costs a scan of the events' JSON at worst.
CANDIDATE_BATCH = 100


class MediaRetention:
    def __init__(
        self, db: Database, media: MediaService, admin: MediaAdmin, lifetime_ms: int | None
    ) -> None:
        self._db = db
        self._media = media
        self._admin = admin
        self._lifetime_ms = lifetime_ms

    async def sweep(self, now_ms: int) -> SweepResult:
        released = await self._release_unreferenced()
        expired = await self._delete_expired(now_ms)
        return SweepResult(released.purged + expired.purged,
                           released.purged_bytes + expired.purged_bytes)

    async def _delete_expired(self, now_ms: int) -> SweepResult:
        if self._lifetime_ms is None:
            return SweepResult()
        # Empty files too (size > -1); avatars in use are kept.
        ids = await self._admin.stale_media(now_ms - self._lifetime_ms, -1, keep_profiles=True)
        size = await self._size(ids)
        return SweepResult(len(await self._admin.delete_many(ids)), size)

    async def _release_unreferenced(self) -> SweepResult:
        prefix = f"mxc://{self._media.server_name}/"
        result = SweepResult()
        while True:
            candidates = await self._db.run(
                lambda conn: store.get_candidates(conn, CANDIDATE_BATCH),
                name="media_release_read",
            )
            if not candidates:
                return result
            used = await self._db.run(
                functools.partial(store.get_still_used, media_ids=candidates, mxc_prefix=prefix),
                name="media_release_check",
            )
            unused = [m for m in candidates if m not in used]
            size = await self._size(unused)
            deleted = await self._media.delete_local_media(unused) if unused else []
            await self._db.transaction(
                functools.partial(store.delete_candidates, media_ids=candidates),
                name="media_release_done",
            )
            result = SweepResult(result.purged + len(deleted), result.purged_bytes + size)

    async def _size(self, media_ids: list[str]) -> int:
        if not media_ids:
            return 0
        return await self._db.run(
            lambda conn: admin_media.get_total_size(conn, media_ids), name="media_sizes"
        )
