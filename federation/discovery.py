"""Server discovery: from a server name to where to connect, which certificate to expect and
which `Host` header to send.

Implements server-server-api.md "Resolving server names". Theory of operation, in the spec's
order (each step only when the ones before it did not apply):

1. IP literal (``1.2.3.4``, ``[::1]:8448``): that address, its port or 8448; the certificate
   must be valid for the IP; `Host` is the server name.
2. Hostname with an explicit port: that host and port; certificate and `Host` for the name.
3. ``https://<hostname>/.well-known/matrix/server`` names a delegated server. Its
   ``m.server`` then goes through 3.1 IP literal, 3.2 explicit port, 3.3 SRV
   ``_matrix-fed._tcp.<delegated>``, 3.4 SRV ``_matrix._tcp.<delegated>`` (deprecated),
   3.5 port 8448; certificate and `Host` for the delegated name.
4. No delegation: SRV ``_matrix-fed._tcp.<hostname>``, 5. then ``_matrix._tcp.<hostname>``
   (deprecated), 6. then the hostname on port 8448; certificate and `Host` for the hostname.

SRV records give several targets: they are tried in RFC 2782's order (priority, then a draw
weighted by weight, :func:`order_srv`), the next when connecting to one fails
(`FederationClient`).

`.well-known` answers, good or bad, are cached (:func:`well_known_lifetime`): a good one for
its Cache-Control / Expires lifetime (24 hours without headers) within 5 minutes and 48 hours;
a definite "no delegation" (a non-200 status, bad JSON, no valid ``m.server``) for an hour;
a failure to get any answer for 2 minutes, doubling on each repeated failure up to an hour.
SRV answers are cached by the DNS resolver for their TTL.

The I/O is behind two small interfaces so that tests can answer them without a network:
:class:`SrvResolver` (dnspython's async resolver by default) and :class:`WellKnownFetcher`
(HTTPS through the federation :class:`~federation.transport.Transport` by default).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import dns.asyncresolver
import dns.exception
import dns.resolver
from yarl import URL

from federation.addresses import DEFAULT_FEDERATION_PORT, split_server_name
from federation.transport import FederationError, Target, Transport, url_target
from homeserver.protocol.addresses import ip_literal
from homeserver.services.clock import Clock

log = logging.getLogger(__name__)

WELL_KNOWN_DEFAULT_S = 24 * 3600.0
WELL_KNOWN_MIN_S = 5 * 60.0
WELL_KNOWN_MAX_S = 48 * 3600.0
WELL_KNOWN_INVALID_S = 3600.0
WELL_KNOWN_RETRY_FIRST_S = 120.0
WELL_KNOWN_MAX_BYTES = 64 * 1024
_MAX_REDIRECTS = 5
_MAX_CACHED_HOSTS = 10_000


class DiscoveryError(FederationError):
    """The server name cannot be resolved to anywhere to connect."""


@dataclass(frozen=True, slots=True)
class SrvRecord:
    priority: int
    weight: int
    port: int
    target: str


class SrvResolver(Protocol):
    """SRV lookup; an empty list when there is no usable record."""

    async def lookup(self, name: str) -> list[SrvRecord]: ...


@dataclass(frozen=True, slots=True)
class WellKnownAnswer:
    """What `GET https://<hostname>/.well-known/matrix/server` gave (after redirects)."""

    status: int | None  # None: no HTTP answer at all (DNS, connection, TLS, timeout)
    body: bytes = b""
    headers: Mapping[str, str] | None = None


class WellKnownFetcher(Protocol):
    async def fetch(self, hostname: str) -> WellKnownAnswer: ...


# --- pure rules -------------------------------------------------------------------------------

def parse_well_known(answer: WellKnownAnswer) -> str | None:
    """The delegated server name of a valid answer, or None ("skip to step 4")."""
    if answer.status != 200:
        return None
    try:
        # "servers parsing the response should assume that the body is JSON regardless of type"
        body = json.loads(answer.body)
    except ValueError:
        return None
    delegated = body.get("m.server") if isinstance(body, dict) else None
    if not isinstance(delegated, str):
        return None
    try:
        split_server_name(delegated)
    except ValueError:
        return None
    return delegated


def _header_lifetime(headers: Mapping[str, str], now_wall_s: float) -> float | None:
    """The lifetime the response's cache headers give, or None if they give none."""
    directives = [d.strip().lower() for d in headers.get("Cache-Control", "").split(",")]
    if "no-store" in directives or "no-cache" in directives:
        return 0.0
    for d in directives:
        name, _, value = d.partition("=")
        if name.strip() == "max-age":
            try:
                return float(int(value.strip().strip('"')))
            except ValueError:
                return None
    expires = headers.get("Expires")
    if expires is not None:
        try:
            return email.utils.parsedate_to_datetime(expires).timestamp() - now_wall_s
        except (TypeError, ValueError):
            return 0.0  # RFC 9111: an invalid Expires means "already expired"
    return None


def well_known_lifetime(answer: WellKnownAnswer, failures: int, now_wall_s: float) -> float:
    """Seconds to cache ``answer``; ``failures`` counts consecutive answerless attempts,
    this one included."""
    if answer.status is None or answer.status >= 500:
        backoff = WELL_KNOWN_RETRY_FIRST_S * float(2 ** min(max(0, failures - 1), 16))
        return min(WELL_KNOWN_INVALID_S, backoff)
    if parse_well_known(answer) is None:
        return WELL_KNOWN_INVALID_S
    lifetime = _header_lifetime(answer.headers or {}, now_wall_s)
    if lifetime is None:
        lifetime = WELL_KNOWN_DEFAULT_S
    return min(max(lifetime, WELL_KNOWN_MIN_S), WELL_KNOWN_MAX_S)


def order_srv(records: list[SrvRecord], randint: Callable[[int, int], int]) -> list[SrvRecord]:
    """The records in the order to try them (RFC 2782): lowest priority first; within one
    priority, each next record drawn at random in proportion to its weight, records of weight
    0 having a small chance of going first. `randint(a, b)` draws from a..b inclusive
    (`random.randint`; tests pass a seeded or scripted one). No record when the only one is
    the target "." ("service decidedly not available")."""
    usable = [r for r in records if r.target not in ("", ".")]
    ordered: list[SrvRecord] = []
    for priority in sorted({r.priority for r in usable}):
        # Weight-0 records first, as the RFC says, so that they are picked only when the draw
        # is 0; the rest in their given order.
        left = sorted((r for r in usable if r.priority == priority), key=lambda r: r.weight != 0)
        while left:
            draw = randint(0, sum(r.weight for r in left))
            running = 0
            for i, record in enumerate(left):
                running += record.weight
                if running >= draw:
                    ordered.append(left.pop(i))
                    break
    return ordered


# --- the resolver ----------------------------------------------------------------------------

@dataclass(slots=True)
class _Cached:
    expires: float  # monotonic seconds
    delegated: str | None
    failures: int


class ServerDiscovery:
    """Resolves server names in the spec's order, caching `.well-known` answers."""

    def __init__(
        self, srv: SrvResolver, well_known: WellKnownFetcher, clock: Clock,
        randint: Callable[[int, int], int] = random.randint,
    ) -> None:
        self.srv = srv
        self.well_known = well_known
        self._clock = clock
        self._randint = randint  # SRV weights' draw (`order_srv`)
        self._cache: dict[str, _Cached] = {}
        self._inflight: dict[str, asyncio.Task[str | None]] = {}

    async def resolve(self, server_name: str) -> list[Target]:
        """Where to connect for ``server_name``, in the order to try (several only from SRV
        records: the next is for when connecting to one fails); DiscoveryError if it is not a
        server name."""
        try:
            host, port = split_server_name(server_name)
        except ValueError as e:
            raise DiscoveryError(str(e)) from e
        if ip_literal(host) is not None:  # step 1
            return [Target(host, port or DEFAULT_FEDERATION_PORT, host, server_name)]
        if port is not None:  # step 2
            return [Target(host, port, host, server_name)]
        delegated = await self._delegation(host)  # step 3
        if delegated is not None:
            return await self._resolve_delegated(delegated)
        return await self._srv_or_default(host)  # steps 4 to 6

    async def _resolve_delegated(self, delegated: str) -> list[Target]:
        dhost, dport = split_server_name(delegated)  # validated by parse_well_known
        if ip_literal(dhost) is not None:  # 3.1
            return [Target(dhost, dport or DEFAULT_FEDERATION_PORT, dhost, delegated)]
        if dport is not None:  # 3.2
            return [Target(dhost, dport, dhost, f"{dhost}:{dport}")]
        return await self._srv_or_default(dhost)  # 3.3 to 3.5

    async def _srv_or_default(self, host: str) -> list[Target]:
        """SRV `_matrix-fed._tcp`, then the deprecated `_matrix._tcp`, then port 8448; the
        certificate and `Host` are always for ``host``, whatever the SRV target is. As
        Synapse, the targets of the first SRV name that has any, and no port 8448 after them."""
        for service in ("_matrix-fed._tcp", "_matrix._tcp"):
            records = order_srv(await self.srv.lookup(f"{service}.{host}"), self._randint)
            if records:
                return [Target(r.target.rstrip("."), r.port, host, host) for r in records]
        return [Target(host, DEFAULT_FEDERATION_PORT, host, host)]

    async def _delegation(self, hostname: str) -> str | None:
        cached = self._cache.get(hostname)
        if cached is not None and cached.expires > self._clock.monotonic():
            return cached.delegated
        task = self._inflight.get(hostname)
        if task is None:
            task = asyncio.create_task(self._fetch_well_known(hostname, cached))
            self._inflight[hostname] = task
            task.add_done_callback(lambda _t: self._inflight.pop(hostname, None))
        return await asyncio.shield(task)

    async def _fetch_well_known(self, hostname: str, previous: _Cached | None) -> str | None:
        answer = await self.well_known.fetch(hostname)
        answerless = answer.status is None or answer.status >= 500
        failures = (previous.failures + 1 if previous else 1) if answerless else 0
        lifetime = well_known_lifetime(answer, failures, self._clock.now_ms() / 1000)
        delegated = parse_well_known(answer)
        if len(self._cache) >= _MAX_CACHED_HOSTS:
            self._cache.pop(next(iter(self._cache)))  # the oldest entry: enough to bound it
        self._cache[hostname] = _Cached(self._clock.monotonic() + lifetime, delegated, failures)
        log.debug("well-known of %s: %s (cached %.0fs)", hostname, delegated, lifetime)
        return delegated


# --- the real I/O behind the two interfaces ---------------------------------------------------

class DnsSrvResolver:
    """SRV lookups with dnspython's async resolver, its cache honouring record TTLs."""

    def __init__(self, resolver: dns.asyncresolver.Resolver | None = None) -> None:
        # Made on first use: reading /etc/resolv.conf at start-up would stop a server on a
        # machine without one, though most federation never needs SRV.
        self.resolver = resolver

    async def lookup(self, name: str) -> list[SrvRecord]:
        try:
            if self.resolver is None:
                self.resolver = dns.asyncresolver.Resolver()
                self.resolver.cache = dns.resolver.Cache()
                self.resolver.lifetime = 10.0
            answer = await self.resolver.resolve(name, "SRV")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as e:
            # A DNS failure is treated like "no record": the next step (port 8448) may work.
            log.info("SRV lookup of %s failed: %s", name, e)
            return []
        return [
            SrvRecord(r.priority, r.weight, r.port, r.target.to_text(omit_final_dot=True))
            for r in answer
        ]


class HttpsWellKnownFetcher:
    """`.well-known/matrix/server` over the federation transport (so under the same address
    policy and TLS settings), following up to five HTTPS redirects and refusing loops."""

    def __init__(self, transport: Transport, port: int = 443) -> None:
        self.transport = transport
        self.port = port  # 443 but in tests, which cannot listen there

    async def fetch(self, hostname: str) -> WellKnownAnswer:
        url = URL.build(
            scheme="https", host=hostname, port=None if self.port == 443 else self.port,
            path="/.well-known/matrix/server",
        )
        seen: set[str] = set()
        for _ in range(_MAX_REDIRECTS + 1):
            seen.add(str(url))
            try:
                resp = await self.transport.request(
                    "GET", url_target(url), url.raw_path_qs, max_bytes=WELL_KNOWN_MAX_BYTES,
                )
            except FederationError as e:
                log.debug("well-known of %s: %s", hostname, e)
                return WellKnownAnswer(None)
            location = resp.headers.get("Location")
            if resp.status in (301, 302, 303, 307, 308) and location:
                url = url.join(URL(location))
                if url.scheme != "https" or str(url) in seen:
                    return WellKnownAnswer(resp.status)  # insecure or looping: invalid
                continue
            return WellKnownAnswer(resp.status, resp.body, dict(resp.headers))
        return WellKnownAnswer(None)
