"""The media repository: uploads, asynchronous uploads (`/create`), downloads and thumbnails.

Bytes go to the content-addressed `ContentStore`; `local_media` maps each random media ID to a
content hash. Nothing is held open while a client streams an upload: the file is written and
hashed first, and only then is the row inserted, so a slow or aborted upload costs no database
connection and leaves no row.

Another server's media (its name in the `mxc://` URI) is fetched and cached by
`RemoteMediaCache`, for authenticated requests only: the deprecated unauthenticated paths
answer 404 for it, as the spec's "freeze" asks of newly cached remote media (and as Synapse
does). Quarantined media (the admin API) answers 404 too, to everyone.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from homeserver.config import Config
from homeserver.errors import MatrixError, forbidden, not_found, too_large
from homeserver.services.clock import Clock
from homeserver.services.media_files import ACCESS_GRANULARITY_MS, MediaFiles
from homeserver.services.media_store import ContentStore, Staged
from homeserver.services.media_thumbnails import (
    ImageTooLarge,
    NotAnImage,
    ThumbnailSize,
    is_standard,
    largest_standard,
    render,
    target_for,
)
from homeserver.services.outward import Outward
from homeserver.services.ratelimit import RateLimiter
from homeserver.services.remote_media_cache import RemoteMediaCache
from homeserver.services.requester import Requester
from storage import media as store
from storage.database import Database

# The spec's recommended lifetime of an ID from /create that nothing was uploaded to.
UNUSED_ID_LIFETIME_MS = 24 * 60 * 60 * 1000
# Thumbnails decoded at once: each holds a decoded image in memory and a core busy.
THUMBNAIL_CONCURRENCY = 2


@dataclass(frozen=True, slots=True)
class Upload:
    """An upload as the client sent it: a byte stream and what the client said about it."""

    chunks: AsyncIterable[bytes]
    declared_length: int | None
    content_type: str
    upload_name: str | None


@dataclass(frozen=True, slots=True)
class MediaFile:
    """A file to serve: where its bytes are and what to call them."""

    path: Path
    content_type: str
    upload_name: str | None


@dataclass(frozen=True, slots=True)
class _Source:
    """The content a download or thumbnail is of, local or another server's."""

    content_hash: str
    content_type: str
    upload_name: str | None


MAX_THUMBNAILS_PER_SOURCE = 16


class MediaService:
    def __init__(
        self, db: Database, config: Config, ratelimiter: RateLimiter,
        clock: Clock, outward: Outward,
    ) -> None:
        self.db = db
        self.server_name = config.server.server_name
        self.limits = config.media
        self.content = ContentStore(config.path(config.media.store_path))
        self.files = MediaFiles(db, self.content)
        self.remote = RemoteMediaCache(
            self.files, outward.media, outward.server_limits, config.media, clock
        )
        self.ratelimiter = ratelimiter
        self.clock = clock
        self._uploads = _UploadWaiters()
        self._thumbnail_slots = asyncio.Semaphore(THUMBNAIL_CONCURRENCY)

    @property
    def max_upload_bytes(self) -> int:
        return self.limits.max_upload_bytes

    def mxc_uri(self, media_id: str) -> str:
        return f"mxc://{self.server_name}/{media_id}"

    async def upload(self, requester: Requester, upload: Upload) -> str:
        """Store new content under a fresh media ID; return its `mxc://` URI."""
        self.ratelimiter.check_user("per_user", requester)
        staged = await self._stage(upload)
        content = _content(staged, upload)
        media_id = _new_media_id()

        async def insert(conn: asyncpg.Connection) -> None:
            await store.insert_uploaded(
                conn, media_id, requester.user_id, self.clock.now_ms(), content
            )

        await self.files.commit([staged], insert, name="media_upload")
        return self.mxc_uri(media_id)

    async def keep_server_copy(
        self, data: bytes, content_type: str, upload_name: str | None
    ) -> str:
        """Keep `data` the server fetched itself (a URL preview's image) as local media owned
        by no user (no user's upload it counts against); its media ID. The same bytes of the
        same type kept before are reused, so fetching an image again adds nothing."""
        staged = await asyncio.to_thread(self.content.stage_bytes, data)
        content = store.Content(staged.content_hash, staged.size, content_type, upload_name)
        media_id = _new_media_id()

        async def find_or_insert(conn: asyncpg.Connection) -> str:
            existing = await store.get_server_media(conn, staged.content_hash, content_type)
            if existing is not None:
                return existing
            await store.insert_uploaded(conn, media_id, None, self.clock.now_ms(), content)
            return media_id

        return await self.files.commit([staged], find_or_insert, name="media_server_copy")

    async def create(self, requester: Requester) -> tuple[str, int]:
        """Reserve a media ID to upload to later; return its URI and when it expires."""
        self.ratelimiter.check_user("per_user", requester)
        media_id = _new_media_id()
        now = self.clock.now_ms()
        expires = now + UNUSED_ID_LIFETIME_MS

        async def reserve(conn: asyncpg.Connection) -> None:
            if await store.count_pending(conn, requester.user_id, now) >= (
                self.limits.max_pending_uploads
            ):
                raise MatrixError(
                    429, "M_LIMIT_EXCEEDED",
                    "Too many media IDs waiting for their upload; upload to those first",
                )
            await store.insert_pending(conn, media_id, requester.user_id, now, expires)

        await self.db.transaction(reserve, name="media_create")
        return self.mxc_uri(media_id), expires

    async def upload_to(
        self, requester: Requester, server_name: str, media_id: str, upload: Upload
    ) -> None:
        """Fill an ID reserved with `create`: only its creator may, and only once."""
        row = await self._local_row(server_name, media_id)
        if row.user_id != requester.user_id:
            raise forbidden("This media ID was created by another user")
        if row.content_hash is not None:
            raise _cannot_overwrite()
        staged = await self._stage(upload)
        content = _content(staged, upload)

        async def complete(conn: asyncpg.Connection) -> bool:
            return await store.complete_pending(
                conn, media_id, requester.user_id, self.clock.now_ms(), content
            )

        if not await self.files.commit([staged], complete, name="media_upload"):
            raise _cannot_overwrite()
        self._uploads.notify(media_id)

    async def get_content(
        self, server_name: str, media_id: str, timeout_ms: int, requester: Requester | None,
    ) -> MediaFile:
        """The uploaded file, waiting up to `timeout_ms` for an upload still to come; another
        server's only for a `requester` (fetched for them if not cached)."""
        source = await self._source(server_name, media_id, timeout_ms, requester)
        path = await self.files.existing(source.content_hash)
        return MediaFile(path, source.content_type, source.upload_name)

    async def get_thumbnail(
        self, server_name: str, media_id: str, width: int, height: int, method: str,
        timeout_ms: int, requester: Requester | None,
    ) -> MediaFile:
        """A thumbnail of an uploaded image (or another server's, fetched whole and
        thumbnailed here, as Synapse does), made on first request and cached after."""
        source = await self._source(server_name, media_id, timeout_ms, requester)
        source_hash = source.content_hash
        size = target_for(width, height, method)

        async def cached(conn: asyncpg.Connection) -> store.ThumbnailRow | None:
            nonlocal size
            found = await store.get_thumbnail(conn, source_hash, size.width, size.height, method)
            if found is None and not is_standard(size) and (
                await store.count_thumbnails(conn, source_hash) >= MAX_THUMBNAILS_PER_SOURCE
            ):
                # Unusual sizes each cost a decode and a file; past a few per image (any
                # caller, even unauthenticated, can ask), answer with the largest standard one.
                size = largest_standard(method)
                found = await store.get_thumbnail(
                    conn, source_hash, size.width, size.height, method
                )
            return found

        thumbnail = await self.db.run(cached)
        if thumbnail is None:
            source_path = await self.files.existing(source_hash)
            async with self._thumbnail_slots:
                made = await asyncio.to_thread(self._make_thumbnail, source_path, size)
            thumbnail = store.ThumbnailRow(
                source_hash if made.staged is None else made.staged.content_hash,
                made.content_type,
            )

            async def remember(conn: asyncpg.Connection) -> None:
                assert thumbnail is not None
                # A deletion of the source meanwhile took its thumbnails along; a row now
                # would outlive it.
                if not await store.get_contents_in_use(conn, [source_hash]):
                    raise not_found("Unknown media ID")
                await store.insert_thumbnail(
                    conn, source_hash, size.width, size.height, method, thumbnail
                )

            staged = [] if made.staged is None else [made.staged]
            await self.files.commit(
                staged, remember, name="media_thumbnail", also_lock=[source_hash]
            )
        path = await self.files.existing(thumbnail.thumbnail_hash)
        return MediaFile(path, thumbnail.content_type, None)

    async def _source(
        self, server_name: str, media_id: str, timeout_ms: int, requester: Requester | None,
    ) -> _Source:
        if server_name != self.server_name:
            if requester is None:
                raise not_found(
                    "Media from other servers is served on the authenticated endpoints only"
                )
            remote = await self.remote.get(requester.user_id, server_name, media_id, timeout_ms)
            return _Source(remote.content_hash, remote.content_type, remote.upload_name)
        row = await self._uploaded_row(media_id, timeout_ms)
        assert row.content_hash is not None and row.content_type is not None
        await self._touch(row)
        return _Source(row.content_hash, row.content_type, row.upload_name)

    def _make_thumbnail(self, source: Path, size: ThumbnailSize) -> _Thumbnail:
        """Render a thumbnail and stage its bytes (blocking: runs in a worker thread)."""
        try:
            rendered = render(source, size, self.limits.max_image_pixels)
        except NotAnImage:
            raise MatrixError(
                400, "M_UNKNOWN", "Cannot generate thumbnails for the requested content"
            ) from None
        except ImageTooLarge:
            raise too_large("Content is too large to thumbnail") from None
        if rendered.data is None:
            return _Thumbnail(None, rendered.content_type)
        return _Thumbnail(self.content.stage_bytes(rendered.data), rendered.content_type)

    async def delete_local_media(self, media_ids: list[str]) -> list[str]:
        """Delete local media IDs with their thumbnails; the IDs that existed.

        A file goes from disk only when no media ID and no thumbnail uses it any more (the
        same bytes uploaded twice share one file). Files are removed while their locks are
        held (see `media_store`), so an upload of the same bytes meanwhile either waits and
        puts the file back, or committed first and keeps it.
        """
        async def delete(conn: asyncpg.Connection) -> list[str]:
            deleted = await store.delete_media(conn, media_ids)
            await self.files.release(conn, [h for _, h in deleted if h is not None])
            return [media_id for media_id, _ in deleted]

        return await self.db.transaction(delete, name="media_delete")

    async def _stage(self, upload: Upload) -> Staged:
        limit = self.limits.max_upload_bytes
        if upload.declared_length is not None and upload.declared_length > limit:
            raise too_large(f"Uploads are limited to {limit} bytes")
        return await self.content.stage_stream(upload.chunks, limit)

    async def _touch(self, row: store.MediaRow) -> None:
        """Record a download in `last_access_ts` (what deleting media by age goes by), at
        most once per `ACCESS_GRANULARITY_MS`. The row the download read says when the last
        one was recorded, so a download within that time costs no round trip."""
        now = self.clock.now_ms()
        if row.last_access_ts is not None and now - row.last_access_ts < ACCESS_GRANULARITY_MS:
            return
        media_id = row.media_id

        async def touch(conn: asyncpg.Connection) -> None:
            await store.touch_media(conn, media_id, now, ACCESS_GRANULARITY_MS)

        await self.db.run(touch, name="media_touch")

    async def _local_row(self, server_name: str, media_id: str) -> store.MediaRow:
        """The row of a local media ID, or 404 (remote, unknown, or reserved and expired)."""
        if server_name != self.server_name:
            raise not_found("Only this server's own media can be uploaded to")

        async def read(conn: asyncpg.Connection) -> store.MediaRow | None:
            return await store.get_media(conn, media_id)

        row = await self.db.run(read)
        if row is None or row.quarantined_by is not None or (
            row.content_hash is None and (row.unused_expires_ts or 0) <= self.clock.now_ms()
        ):
            # Quarantined media is hidden from everyone, admins included, as unknown.
            raise not_found("Unknown media ID")
        return row

    async def _uploaded_row(self, media_id: str, timeout_ms: int) -> store.MediaRow:
        # Watch before reading, so an upload finishing between the read and the wait still
        # wakes us.
        with self._uploads.watch(media_id) as uploaded:
            row = await self._local_row(self.server_name, media_id)
            if row.content_hash is None and timeout_ms > 0:
                try:
                    await asyncio.wait_for(uploaded.wait(), timeout_ms / 1000)
                except TimeoutError:
                    pass
                row = await self._local_row(self.server_name, media_id)
        if row.content_hash is None:
            raise MatrixError(504, "M_NOT_YET_UPLOADED", "Content has not yet been uploaded")
        return row


@dataclass(frozen=True, slots=True)
class _Thumbnail:
    """A rendered thumbnail: its staged bytes, or None when the source serves as itself."""

    staged: Staged | None
    content_type: str


def _content(staged: Staged, upload: Upload) -> store.Content:
    return store.Content(staged.content_hash, staged.size, upload.content_type, upload.upload_name)


def _new_media_id() -> str:
    """24 random characters from the spec's media ID alphabet (URL-safe base64)."""
    return secrets.token_urlsafe(18)


def _cannot_overwrite() -> MatrixError:
    return MatrixError(409, "M_CANNOT_OVERWRITE_MEDIA", "Media already uploaded")


class _UploadWaiters:
    """Wake-ups for downloads waiting on an asynchronous upload, within this process."""

    def __init__(self) -> None:
        self._events: dict[str, tuple[asyncio.Event, int]] = {}

    @contextmanager
    def watch(self, media_id: str) -> Iterator[asyncio.Event]:
        event, watchers = self._events.get(media_id, (asyncio.Event(), 0))
        self._events[media_id] = (event, watchers + 1)
        try:
            yield event
        finally:
            event, watchers = self._events[media_id]
            if watchers == 1:
                del self._events[media_id]
            else:
                self._events[media_id] = (event, watchers - 1)

    def notify(self, media_id: str) -> None:
        entry = self._events.get(media_id)
        if entry is not None:
            entry[0].set()
