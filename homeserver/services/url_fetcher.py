"""Fetching a web page or image a user named, under the address policy (URL previews).

Any user can make the server fetch any URL, so the fetch is where server-side request forgery
is stopped. Every hostname is resolved by :class:`_CheckedResolver`, which hands the connector
only addresses the :class:`~homeserver.protocol.addresses.AddressPolicy` allows: the connection
goes to an address that was checked, and no second lookup (which a rebinding DNS server could
answer differently) happens for it. Lookups run in threads of their own, as federation's do
(:class:`~homeserver.services.host_resolver.SystemResolver`), so names whose DNS never answers
cannot hold the default executor that media I/O and page parsing use. IP literals, which
aiohttp never resolves, are checked here before the request. Redirects are followed by hand,
each hop's URL checked again like the first. Time and size are bounded (the body is read by
:func:`~homeserver.services.http_bodies.read_bounded`, as federation reads its answers); no
cookies are kept and no proxy from the environment is used.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from homeserver.protocol.addresses import AddressPolicy, ip_literal
from homeserver.protocol.url_previews import preview_target
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


class _CheckedResolver(AbstractResolver):
    """The system's resolver (in its own threads, as federation's), with the addresses the
    policy refuses taken out."""

    def __init__(self, policy: AddressPolicy, lookup: SystemResolver) -> None:
        self.policy = policy
        self.lookup = lookup

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            addresses = await self.lookup.resolve(host, port)
        except ResolveFailed as e:
            raise FetchFailed(str(e)) from None
        allowed: list[ResolveResult] = []
        refusals = []
        for ip in addresses:
            why = self.policy.refusal(ip)
            if why is not None:
                refusals.append(f"{ip} is {why}")
                continue
            allowed.append(ResolveResult(
                hostname=host, host=str(ip), port=port,
                family=socket.AF_INET6 if ip.version == 6 else socket.AF_INET,
                proto=socket.IPPROTO_TCP, flags=socket.AI_NUMERICHOST,
            ))
        if not allowed:
            raise FetchRefused(f"{host}: {', '.join(refusals) or 'no addresses'}")
        return allowed

    async def close(self) -> None:
        return None


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
                resolver=_CheckedResolver(self.policy, self._lookup),
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
            self._check_literal(url)
            try:
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
            except (FetchRefused, FetchFailed):
                raise
            except aiohttp.InvalidURL as e:
                if hop == 0:
                    raise UnusableUrl(f"{type(e).__name__}: {e}") from None
                raise FetchFailed(f"a redirect to an unusable URL: {e}") from None
            except (aiohttp.ClientError, TimeoutError, ValueError) as e:
                raise FetchFailed(f"fetching {url.host}: {type(e).__name__}: {e}") from None
        raise FetchFailed(f"more than {MAX_REDIRECTS} redirects")

    def _check_literal(self, url: URL) -> None:
        ip = ip_literal(url.raw_host or "")
        if ip is not None and (why := self.policy.refusal(ip)) is not None:
            raise FetchRefused(f"{ip} is {why}")

    @staticmethod
    def _next_hop(url: URL, location: str) -> URL:
        try:
            return preview_target(str(url.join(URL(location))))
        except ValueError as e:
            raise FetchFailed(f"a redirect to an unusable URL: {e}") from None
