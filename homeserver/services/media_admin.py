"""What server admins do to local media (Synapse's media admin API): list and delete a user's
media, look one up, quarantine it (by ID, by room, by uploader), protect it from quarantine,
and delete media by ID or by age and size.

Quarantined media stays on disk but is served to no one (the media service answers 404 for
it); protected media cannot be quarantined, nor deleted by age and size. Deleting goes
through `MediaService.delete_local_media`, which keeps a file while another media ID uses
the same bytes. Only local media is managed here: other servers' media cached for local users
(`remote_media_cache.py`) is evicted by size, least recently used first, and is neither
listed, quarantined nor deleted through this API yet.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import asyncpg

from homeserver.errors import invalid_param, not_found
from homeserver.services.local_users import require_local_account
from homeserver.services.media import MediaService
from storage import admin_media as store
from storage import rooms as rooms_store
from storage.admin_media import MediaInfo
from storage.database import Database

# Media IDs deleted per transaction when deleting by age and size: each holds file locks.
DELETE_BATCH = 500

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class MediaPage:
    media: list[MediaInfo]
    total: int
    next_token: int | None  # the offset of the next page; None after the last


@dataclass(frozen=True, slots=True)
class MediaOrder:
    """A sorted slice of a user's media: `order_by` is a key of `store.ORDER_COLUMNS`."""

    order_by: str
    backwards: bool
    offset: int
    limit: int


class MediaAdmin:
    def __init__(self, db: Database, media: MediaService) -> None:
        self._db = db
        self._media = media
        self.server_name = media.server_name

    async def user_media(self, user_id: str, order: MediaOrder) -> MediaPage:
        async def read(conn: asyncpg.Connection) -> MediaPage:
            await require_local_account(conn, self.server_name, user_id)
            page = await store.list_user_media(
                conn, user_id, order.order_by, order.backwards, order.offset, order.limit
            )
            total = await store.count_user_media(conn, user_id)
            end = order.offset + len(page)
            return MediaPage(page, total, end if end < total else None)

        return await self._db.run(read, name="admin_user_media")

    async def delete_user_media(self, user_id: str, order: MediaOrder) -> list[str]:
        """Delete the slice of `user_id`'s media that `user_media` would list."""
        page = await self.user_media(user_id, order)
        return await self._media.delete_local_media([m.media_id for m in page.media])

    async def media_info(self, server_name: str, media_id: str) -> MediaInfo:
        self._require_local(server_name)
        info = await self._read(lambda conn: store.get_media_info(conn, media_id))
        if info is None:
            raise not_found("Unknown media")
        return info

    async def delete(self, server_name: str, media_id: str) -> list[str]:
        if server_name != self.server_name:
            raise invalid_param("Can only delete local media")
        deleted = await self._media.delete_local_media([media_id])
        if not deleted:
            raise not_found("Unknown media")
        return deleted

    async def delete_stale(self, before_ts: int, size_gt: int, keep_profiles: bool) -> list[str]:
        """Delete media last downloaded (or uploaded, if never downloaded) before `before_ts`
        and larger than `size_gt` bytes; with `keep_profiles`, none used as an avatar."""
        return await self.delete_many(await self.stale_media(before_ts, size_gt, keep_profiles))

    async def stale_media(self, before_ts: int, size_gt: int, keep_profiles: bool) -> list[str]:
        """What `delete_stale` deletes."""
        prefix = f"mxc://{self.server_name}/" if keep_profiles else None
        return await self._read(
            lambda conn: store.get_stale_media(conn, before_ts, size_gt, prefix)
        )

    async def delete_many(self, media_ids: list[str]) -> list[str]:
        """Delete local media IDs, a batch per transaction; the IDs that existed."""
        deleted: list[str] = []
        for start in range(0, len(media_ids), DELETE_BATCH):
            batch = media_ids[start:start + DELETE_BATCH]
            deleted += await self._media.delete_local_media(batch)
        return deleted

    async def quarantine(self, admin: str, server_name: str, media_id: str) -> None:
        """Hide the media from everyone, unless it is protected."""
        await self.media_info(server_name, media_id)
        await self._write(lambda conn: store.quarantine_media(conn, [media_id], admin))

    async def unquarantine(self, server_name: str, media_id: str) -> None:
        await self.media_info(server_name, media_id)
        await self._write(lambda conn: store.unquarantine_media(conn, media_id))

    async def set_protected(self, media_id: str, protected: bool) -> None:
        await self.media_info(self.server_name, media_id)
        await self._write(lambda conn: store.set_protected(conn, media_id, protected))

    async def quarantine_room(self, admin: str, room_id: str) -> int:
        """Quarantine the local media the room's events point at; how many were."""
        async def quarantine(conn: asyncpg.Connection) -> int:
            if await rooms_store.get_room_version(conn, room_id) is None:
                raise not_found("Unknown room")
            uris = await store.get_room_mxc_uris(conn, room_id)
            prefix = f"mxc://{self.server_name}/"
            media_ids = [uri.removeprefix(prefix) for uri in uris if uri.startswith(prefix)]
            return await store.quarantine_media(conn, media_ids, admin)

        return await self._db.transaction(quarantine, name="admin_quarantine_room")

    async def quarantine_user(self, admin: str, user_id: str) -> int:
        """Quarantine every media `user_id` uploaded; how many were."""
        async def quarantine(conn: asyncpg.Connection) -> int:
            await require_local_account(conn, self.server_name, user_id)
            return await store.quarantine_user_media(conn, user_id, admin)

        return await self._db.transaction(quarantine, name="admin_quarantine_user")

    def _require_local(self, server_name: str) -> None:
        if server_name != self.server_name:
            raise not_found("Unknown media: the admin API manages this server's own media only")

    async def _read(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        return await self._db.run(fn, name="admin_media")

    async def _write(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        return await self._db.transaction(fn, name="admin_media")
