"""`GET /media/preview_url`: a page's OpenGraph data, its image re-hosted as an `mxc://` URI.

Off unless `media.url_previews.enabled` (every URL then answers `{}`, the spec's empty preview).
On, a preview is fetched once and kept for CACHE_LIFETIME_MS in a cache of at most CACHE_SIZE
URLs (least recently used out first); requests for a URL being fetched wait for that fetch.
At most FETCH_SLOTS fetches run at once and at most QUEUE_LIMIT distinct URLs are being
fetched or waiting for a slot: past that the answer is 429, so no user can grow memory or
connections without bound. A request's `ts` gets the cached preview even if older was asked
for, as the spec allows.
"""

from __future__ import annotations

import asyncio
import codecs
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from yarl import URL

from homeserver.config import Config
from homeserver.errors import MatrixError, forbidden
from homeserver.protocol.addresses import AddressPolicy
from homeserver.protocol.url_previews import opengraph, page_charset, preview_target
from homeserver.services.clock import Clock
from homeserver.services.media import MediaService
from homeserver.services.ratelimit import RateLimiter
from homeserver.services.requester import Requester
from homeserver.services.url_fetcher import Fetched, FetchFailed, FetchRefused, UrlFetcher

CACHE_LIFETIME_MS = 60 * 60 * 1000
CACHE_SIZE = 1000
FETCH_SLOTS = 4
QUEUE_LIMIT = 32
MAX_PAGE_BYTES = 2 * 1024 * 1024
MAX_IMAGE_BYTES = 10 * 1024 * 1024
PAGE_ACCEPT = "text/html,application/xhtml+xml;q=0.9,image/*;q=0.8"
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")


def invalid_url(why: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_PARAM", f"Cannot preview this URL: {why}")


@dataclass(frozen=True, slots=True)
class _Cached:
    expires_ms: int
    preview: dict[str, Any]


class UrlPreviews:
    def __init__(
        self, config: Config, media: MediaService, ratelimiter: RateLimiter, clock: Clock,
    ) -> None:
        settings = config.media.url_previews
        self.enabled = settings.enabled
        self.media = media
        self.ratelimiter = ratelimiter
        self.clock = clock
        self.fetcher = UrlFetcher(AddressPolicy(allow_private=settings.allow_private_addresses))
        self.max_image_bytes = min(MAX_IMAGE_BYTES, config.media.max_upload_bytes)
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._in_flight: dict[str, asyncio.Task[dict[str, Any]]] = {}
        self._slots = asyncio.Semaphore(FETCH_SLOTS)

    async def close(self) -> None:
        for task in self._in_flight.values():
            task.cancel()
        await self.fetcher.close()

    async def preview(self, requester: Requester, url_text: str) -> dict[str, Any]:
        """The preview of `url_text` for `requester` (400 M_INVALID_PARAM if it is no http(s)
        URL, 403 if it points where this server may not connect)."""
        try:
            url = preview_target(url_text)
        except ValueError as e:
            raise invalid_url(str(e)) from None
        if not self.enabled:
            return {}
        key = str(url)
        cached = self._cache.get(key)
        if cached is not None and cached.expires_ms > self.clock.now_ms():
            self._cache.move_to_end(key)
            return cached.preview
        self.ratelimiter.check("per_user", requester.user_id)
        task = self._in_flight.get(key)
        if task is None:
            if len(self._in_flight) >= QUEUE_LIMIT:
                raise MatrixError(
                    429, "M_LIMIT_EXCEEDED", "Too many URL previews are being fetched",
                    retry_after_ms=1000,
                )
            task = asyncio.ensure_future(self._fetch(requester, url))
            self._in_flight[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        # Shielded: one requester going away does not cancel the fetch others wait for.
        return await asyncio.shield(task)

    def _forget(self, key: str, task: asyncio.Task[dict[str, Any]]) -> None:
        del self._in_flight[key]
        if not task.cancelled():
            task.exception()  # retrieved, even if every requester waiting for it went away

    async def _fetch(self, requester: Requester, url: URL) -> dict[str, Any]:
        async with self._slots:
            preview = await self._build(requester, url)
        self._cache[str(url)] = _Cached(self.clock.now_ms() + CACHE_LIFETIME_MS, preview)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return preview

    async def _build(self, requester: Requester, url: URL) -> dict[str, Any]:
        try:
            page = await self.fetcher.fetch(url, MAX_PAGE_BYTES, PAGE_ACCEPT)
        except FetchRefused as e:
            raise forbidden(f"URL previews may not fetch from this address ({e})") from None
        except FetchFailed as e:
            raise MatrixError(502, "M_UNKNOWN", f"Could not fetch the page: {e}") from None
        media_type = (page.content_type or "").split(";")[0].strip().lower()
        if media_type in IMAGE_TYPES:
            return await self._rehost(requester, page.body, media_type, page.url)
        if media_type not in ("text/html", "application/xhtml+xml"):
            return {}
        # Decoding and parsing up to MAX_PAGE_BYTES of HTML takes a while: off the event loop.
        preview: dict[str, Any] = await asyncio.to_thread(_read_page, page)
        image_url = preview.pop("og:image", None)
        if image_url is not None:
            preview.update(await self._image(requester, URL(image_url)))
        return preview

    async def _image(self, requester: Requester, url: URL) -> dict[str, Any]:
        """The page's image stored in the media repository, or nothing if it cannot be had."""
        try:
            image = await self.fetcher.fetch(preview_target(str(url)), self.max_image_bytes,
                                             "image/*")
        except (ValueError, FetchRefused, FetchFailed):
            return {}
        media_type = (image.content_type or "").split(";")[0].strip().lower()
        if media_type not in IMAGE_TYPES:
            return {}
        return await self._rehost(requester, image.body, media_type, image.url)

    async def _rehost(
        self, requester: Requester, data: bytes, media_type: str, source: URL
    ) -> dict[str, Any]:
        name = source.name or None
        mxc = await self.media.store_bytes(requester.user_id, data, media_type, name)
        return {"og:image": mxc, "og:image:type": media_type, "matrix:image:size": len(data)}


def _read_page(page: Fetched) -> dict[str, str]:
    text = page.body.decode(_codec(page_charset(page.content_type, page.body)), "replace")
    return opengraph(text, page.url)


def _codec(charset: str) -> str:
    """A codec Python knows for `charset`, UTF-8 for names it does not."""
    try:
        return codecs.lookup(charset).name
    except LookupError:
        return "utf-8"
