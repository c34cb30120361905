"""Fetching a web page or image a user named, under the address policy (URL previews).

Any user can make the server fetch any URL, so the fetch is where server-side request forgery
is stopped. Every hostname is resolved by
:class:`~homeserver.services.checked_resolver.CheckedResolver`, which hands the connector only
addresses the :class:`~homeserver.protocol.addresses.AddressPolicy` allows, in threads of its
own; IP literals, which aiohttp never resolves, are checked before each request. Redirects
are followed by hand, each hop's URL checked again like the first. Time and size are bounded
(the body is read by :func:`~homeserver.services.http_bodies.read_bounded`, as federation
reads its answers); no cookies are kept and no proxy from the environment is used.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from yarl import URL

from homeserver.protocol.addresses import AddressPolicy
from homeserver.protocol.url_previews import preview_target
from homeserver.services.checked_resolver import AddressRefused, CheckedResolver, check_literal
from homeserver.services.host_resolver import ResolveFailed, SystemResolver
from homeserver.services.http_bodies import BodyTooLarge, read_bounded

MAX_REDIRECTS = 5
DNS_TIMEOUT_S = 5.0
USER_AGENT = "Moot URL preview (Matrix homeserver)"


class FetchRefused(Exception):
    """The URL, or a redirect's, points where this server may not connect."""


class FetchFailed(Exception):
    """The page could not be fetched (unreachable, too slow, too large, an error status)."""


class UnusableUrl(FetchFailed):
    """The URL asked for is one the HTTP client refuses as malformed: the asker's mistake, where
    the same refusal of a redirect's target is the site's (FetchFailed)."""


@dataclass(frozen=True, slots=True)
class Fetched:
    url: URL  # after redirects
    content_type: str | None
    body: bytes


class UrlFetcher:
    """One pooled HTTP client for previews, bound to an address policy and limits."""

    def __init__(
        self, policy: AddressPolicy, *, timeout_s: float = 10.0, connect_timeout_s: float = 5.0,
    ) -> None:
        self.policy = policy
        self.timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=connect_timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._lookup: SystemResolver | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        # Made on first use, inside the running loop that will also close it.
        if self._session is None:
            self._lookup = SystemResolver(timeout_s=DNS_TIMEOUT_S)
            connector = aiohttp.TCPConnector(
                resolver=CheckedResolver(self.policy, self._lookup),
                use_dns_cache=False, limit=32, limit_per_host=4,
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self.timeout, cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False, headers={"User-Agent": USER_AGENT},
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._lookup is not None:
            self._lookup.close()
            self._lookup = None

    async def fetch(self, url: URL, max_bytes: int, accept: str) -> Fetched:
        """GET `url` (already a `preview_target`), following up to MAX_REDIRECTS redirects;
        FetchRefused for an address the policy forbids, FetchFailed for everything else."""
        for hop in range(MAX_REDIRECTS + 1):
            try:
                check_literal(self.policy, url)
                async with self._get_session().get(
                    url, allow_redirects=False, headers={"Accept": accept},
                ) as resp:
                    if resp.status in (301, 302, 303, 307, 308) and "Location" in resp.headers:
                        url = self._next_hop(url, resp.headers["Location"])
                        continue
                    if resp.status != 200:
                        raise FetchFailed(f"{url.host} answered {resp.status}")
                    try:
                        body = await read_bounded(resp, max_bytes)
                    except BodyTooLarge as e:
                        raise FetchFailed(str(e)) from None
                    return Fetched(url, resp.headers.get("Content-Type"), body)
            except AddressRefused as e:
                raise FetchRefused(str(e)) from None
            except ResolveFailed as e:
                raise FetchFailed(str(e)) from None
            except FetchFailed:
                raise
            except aiohttp.InvalidURL as e:
                if hop == 0:
                    raise UnusableUrl(f"{type(e).__name__}: {e}") from None
                raise FetchFailed(f"a redirect to an unusable URL: {e}") from None
            except (aiohttp.ClientError, TimeoutError, ValueError) as e:
                raise FetchFailed(f"fetching {url.host}: {type(e).__name__}: {e}") from None
        raise FetchFailed(f"more than {MAX_REDIRECTS} redirects")

    @staticmethod
    def _next_hop(url: URL, location: str) -> URL:
        try:
            return preview_target(str(url.join(URL(location))))
        except ValueError as e:
            raise FetchFailed(f"a redirect to an unusable URL: {e}") from None
