"""`GET /media/preview_url`: a page's OpenGraph data, its image re-hosted as an `mxc://` URI.

Off unless `media.url_previews.enabled` (every URL then answers `{}`, the spec's empty preview).
On, previews are kept in the database per URL and fetch time (storage/url_previews.py), shared
by every process and kept across restarts: a preview is the URL's current one for
PREVIEW_LIFETIME_MS, and a request's `ts` gets the newest preview fetched at or before `ts` that
was current then; with none, the current one; with none either, the page is fetched. Rows are
deleted KEEP_EXPIRED_MS after they stop being current (with each new preview stored), so the
table holds a day's fetches, and fetches are bounded as below. The page's image is kept once as
media of the server's own (no user's upload), and the same bytes fetched again reuse it.

Requests for a URL being fetched in this process wait for that fetch. At most FETCH_SLOTS
fetches run at once and at most QUEUE_LIMIT distinct URLs are being fetched or waiting for a
slot: past that the answer is 429, so no user can grow memory or connections without bound.
"""

from __future__ import annotations

import asyncio
import codecs
from typing import Any

import asyncpg
from yarl import URL

from homeserver.config import Config
from homeserver.errors import MatrixError, forbidden
from homeserver.protocol.addresses import AddressPolicy
from homeserver.protocol.url_previews import opengraph, page_charset, preview_target
from homeserver.services.clock import Clock
from homeserver.services.media import MediaService
from homeserver.services.ratelimit import RateLimiter
from homeserver.services.requester import Requester
from homeserver.services.single_flight import SingleFlight
from homeserver.services.url_fetcher import (
    Fetched,
    FetchFailed,
    FetchRefused,
    UnusableUrl,
    UrlFetcher,
)
from storage import url_previews as store
from storage.database import Database

PREVIEW_LIFETIME_MS = 60 * 60 * 1000
KEEP_EXPIRED_MS = 24 * 60 * 60 * 1000
FETCH_SLOTS = 4
QUEUE_LIMIT = 32
MAX_PAGE_BYTES = 2 * 1024 * 1024
MAX_IMAGE_BYTES = 10 * 1024 * 1024
PAGE_ACCEPT = "text/html,application/xhtml+xml;q=0.9,image/*;q=0.8"
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")


def invalid_url(why: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_PARAM", f"Cannot preview this URL: {why}")


_Preview = tuple[dict[str, Any], str | None]  # the answer, and the media ID of its image


class UrlPreviews:
    def __init__(
        self, db: Database, config: Config, media: MediaService, ratelimiter: RateLimiter,
        clock: Clock,
    ) -> None:
        settings = config.media.url_previews
        self.enabled = settings.enabled
        self.db = db
        self.media = media
        self.ratelimiter = ratelimiter
        self.clock = clock
        self.fetcher = UrlFetcher(AddressPolicy(allow_private=settings.allow_private_addresses))
        self.max_image_bytes = min(MAX_IMAGE_BYTES, config.media.max_upload_bytes)
        self._in_flight: SingleFlight[str, dict[str, Any]] = SingleFlight(
            QUEUE_LIMIT, "URL previews being fetched"
        )
        self._slots = asyncio.Semaphore(FETCH_SLOTS)

    async def close(self) -> None:
        self._in_flight.cancel()
        await self.fetcher.close()

    async def preview(self, requester: Requester, url_text: str, ts: int) -> dict[str, Any]:
        """The preview of `url_text` as of `ts` (ms; the future means now) for `requester`
        (400 M_INVALID_PARAM if it is no http(s) URL, 403 if it points where this server may
        not connect)."""
        try:
            url = preview_target(url_text)
        except ValueError as e:
            raise invalid_url(str(e)) from None
        if not self.enabled:
            return {}
        key = str(url)
        kept = await self._kept(key, ts)
        if kept is not None:
            return kept
        self.ratelimiter.check_user("per_user", requester)
        return await self._in_flight.run(key, lambda: self._fetch(url))

    async def _kept(self, key: str, ts: int) -> dict[str, Any] | None:
        """The stored preview current at `ts`, else the one current now, else None."""
        now = self.clock.now_ms()

        async def read(conn: asyncpg.Connection) -> dict[str, Any] | None:
            found = await store.get_preview(conn, key, min(ts, now))
            if found is None and ts < now:
                found = await store.get_preview(conn, key, now)
            return found

        return await self.db.run(read, name="url_preview")

    async def _fetch(self, url: URL) -> dict[str, Any]:
        async with self._slots:
            preview, media_id = await self._build(url)
        now = self.clock.now_ms()

        async def keep(conn: asyncpg.Connection) -> None:
            await store.delete_expired(conn, now - KEEP_EXPIRED_MS)
            await store.insert_preview(
                conn, str(url), now, now + PREVIEW_LIFETIME_MS, preview, media_id
            )

        await self.db.transaction(keep, name="url_preview_keep")
        return preview

    async def _build(self, url: URL) -> _Preview:
        try:
            page = await self.fetcher.fetch(url, MAX_PAGE_BYTES, PAGE_ACCEPT)
        except FetchRefused as e:
            raise forbidden(f"URL previews may not fetch from this address ({e})") from None
        except UnusableUrl as e:
            raise invalid_url(str(e)) from None
        except FetchFailed as e:
            raise MatrixError(502, "M_UNKNOWN", f"Could not fetch the page: {e}") from None
        media_type = (page.content_type or "").split(";")[0].strip().lower()
        if media_type in IMAGE_TYPES:
            return await self._rehost(page.body, media_type, page.url)
        if media_type not in ("text/html", "application/xhtml+xml"):
            return {}, None
        # Decoding and parsing up to MAX_PAGE_BYTES of HTML takes a while: off the event loop.
        preview: dict[str, Any] = await asyncio.to_thread(_read_page, page)
        image_url = preview.pop("og:image", None)
        if image_url is None:
            return preview, None
        image, media_id = await self._image(URL(image_url))
        return {**preview, **image}, media_id

    async def _image(self, url: URL) -> _Preview:
        """The page's image stored in the media repository, or nothing if it cannot be had."""
        try:
            image = await self.fetcher.fetch(preview_target(str(url)), self.max_image_bytes,
                                             "image/*")
        except (ValueError, FetchRefused, FetchFailed):
            return {}, None
        media_type = (image.content_type or "").split(";")[0].strip().lower()
        if media_type not in IMAGE_TYPES:
            return {}, None
        return await self._rehost(image.body, media_type, image.url)

    async def _rehost(self, data: bytes, media_type: str, source: URL) -> _Preview:
        media_id = await self.media.keep_server_copy(data, media_type, source.name or None)
        return {
            "og:image": self.media.mxc_uri(media_id), "og:image:type": media_type,
            "matrix:image:size": len(data),
        }, media_id


def _read_page(page: Fetched) -> dict[str, str]:
    text = page.body.decode(_codec(page_charset(page.content_type, page.body)), "replace")
    return opengraph(text, page.url)


def _codec(charset: str) -> str:
    """A codec Python knows for `charset`, UTF-8 for names it does not."""
    try:
        return codecs.lookup(charset).name
    except LookupError:
        return "utf-8"
