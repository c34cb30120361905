"""The one pooled TLS connection pool outbound federation uses, and the address checks before it.

Every outbound federation byte (signed requests, key fetches, `.well-known` lookups) goes
through :class:`Transport`: it resolves the host, refuses addresses the
:class:`~homeserver.protocol.addresses.AddressPolicy` forbids *before* any connection is opened,
connects to the resolved IP itself (so what was checked is what is used: no second lookup an
attacker's DNS could answer differently), sends the TLS server name and `Host` header that
discovery chose, and bounds time and response size.

Certificates are verified against the system's trust store unless
`federation.verify_certificates` is off (servers federating on one machine with self-signed
certificates, in tests).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from homeserver import metrics
from homeserver.protocol.addresses import AddressPolicy, IPAddress, ip_literal
from homeserver.services.host_resolver import (
    DEFAULT_RESOLVE_TIMEOUT_S,
    ResolveFailed,
    SystemResolver,
)
from homeserver.services.http_bodies import BodyTooLarge, read_bounded

log = logging.getLogger(__name__)

# A response larger than this is refused unread: no federation answer we parse comes close.
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
_POOL_LIMIT = 100
_POOL_LIMIT_PER_HOST = 10


class FederationError(Exception):
    """A remote server could not be reached or did not answer usably."""


class ForbiddenAddress(FederationError):
    """The destination resolves only to addresses outbound federation may not connect to."""


class ConnectFailed(FederationError):
    """No connection was made (the host did not resolve or refused at every address): nothing
    was sent, so another target of the same server may be tried."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where to connect and how to present ourselves there (from discovery)."""

    host: str  # a hostname to resolve, or an IP literal without brackets
    port: int
    tls_name: str  # the name (or IP) the certificate must be valid for; the SNI if a name
    host_header: str


def url_target(url: URL) -> Target:
    """Where an https URL (not a server name: a `.well-known` redirect, a media `Location`)
    points, presented as a browser would: certificate and `Host` for the URL's host."""
    host, port = url.host or "", url.port or 443
    shown = f"[{host}]" if ":" in host else host
    return Target(host, port, host, shown if port == 443 else f"{shown}:{port}")


@dataclass(frozen=True, slots=True)
class TransportResponse:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


class HostResolver(Protocol):
    """Hostname to IP addresses (A/AAAA, following CNAMEs), or ResolveFailed. Tests may
    supply their own."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]: ...


async def read_whole(resp: aiohttp.ClientResponse, max_bytes: int) -> TransportResponse:
    """The answer with its body, or FederationError past ``max_bytes``."""
    try:
        data = await read_bounded(resp, max_bytes)
    except BodyTooLarge as e:
        raise FederationError(f"response too large: {e}") from None
    return TransportResponse(resp.status, resp.headers, data)


def _format_host(ip: IPAddress) -> str:
    return f"[{ip}]" if ip.version == 6 else str(ip)


class Transport:
    """A pooled HTTPS client bound to one address policy, TLS setting and set of timeouts."""

    def __init__(
        self, *, policy: AddressPolicy, verify_certificates: bool = True,
        connect_timeout_s: float = 10.0, request_timeout_s: float = 60.0,
        resolver: HostResolver | None = None,
        resolve_timeout_s: float = DEFAULT_RESOLVE_TIMEOUT_S,
    ) -> None:
        self.policy = policy
        self.verify_certificates = verify_certificates
        self.timeout = aiohttp.ClientTimeout(
            total=request_timeout_s, sock_connect=connect_timeout_s
        )
        self._own_resolver = SystemResolver(timeout_s=resolve_timeout_s)
        self.resolver: HostResolver = resolver or self._own_resolver
        self._session: aiohttp.ClientSession | None = None

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self.verify_certificates:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _get_session(self) -> aiohttp.ClientSession:
        # Made on first use, inside the running loop that will also close it.
        if self._session is None:
            connector = aiohttp.TCPConnector(
                ssl=self._tls_context(), limit=_POOL_LIMIT, limit_per_host=_POOL_LIMIT_PER_HOST,
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self.timeout, auto_decompress=True,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._own_resolver.close()

    async def allowed_addresses(self, host: str, port: int) -> list[IPAddress]:
        """The addresses of ``host`` we may connect to; ForbiddenAddress if there are none."""
        literal = ip_literal(host)
        try:
            resolved = [literal] if literal is not None else await self.resolver.resolve(host, port)
        except ResolveFailed as e:
            raise ConnectFailed(str(e)) from e
        if not resolved:
            raise ConnectFailed(f"{host} has no addresses")
        allowed = [ip for ip in resolved if self.policy.refusal(ip) is None]
        if not allowed:
            ip = resolved[0]
            reason = self.policy.refusal(ip)
            metrics.FEDERATION_ADDRESSES_REFUSED.labels(reason).inc()
            raise ForbiddenAddress(
                f"refusing to connect to {host} ({ip} is {reason}); set "
                "federation.allow_private_addresses to federate on private networks"
            )
        return allowed

    async def request(
        self, method: str, target: Target, uri: str, *,
        headers: Mapping[str, str] | None = None, body: bytes | None = None,
        max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> TransportResponse:
        """Send one HTTPS request to ``target`` and read its answer whole (see `open`)."""
        async with self.open(method, target, uri, headers=headers, body=body) as resp:
            return await read_whole(resp, max_bytes)

    @asynccontextmanager
    async def open(
        self, method: str, target: Target, uri: str, *,
        headers: Mapping[str, str] | None = None, body: bytes | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Send one HTTPS request to ``target``; ``uri`` is the encoded path and query. The
        answer's body is the caller's to read (media, streamed to disk) while the context is
        open; a failure reading it is a FederationError too.

        Each allowed address is tried in turn until one accepts the connection; a failure after
        the connection was made is not retried (the request may have been acted on).
        """
        addresses = await self.allowed_addresses(target.host, target.port)
        all_headers = CIMultiDict(headers or {})
        all_headers["Host"] = target.host_header
        server_hostname = None if ip_literal(target.tls_name) is not None else target.tls_name
        last_error: Exception | None = None
        for ip in addresses:
            url = URL(f"https://{_format_host(ip)}:{target.port}{uri}", encoded=True)
            try:
                resp = await self._send(method, url, all_headers, body, server_hostname)
                break
            except aiohttp.ClientConnectorError as e:
                log.debug("connecting to %s (%s) failed: %s", target.host, ip, e)
                last_error = e
        else:
            raise ConnectFailed(
                f"cannot connect to {target.host}:{target.port}: {last_error}"
            ) from last_error
        try:
            yield resp
        except (aiohttp.ClientError, TimeoutError) as e:
            resp.close()
            raise FederationError(f"{method} {url.host}: {type(e).__name__}: {e}") from e
        except BaseException:
            resp.close()
            raise
        resp.release()

    async def _send(
        self, method: str, url: URL, headers: CIMultiDict[str], body: bytes | None,
        server_hostname: str | None,
    ) -> aiohttp.ClientResponse:
        session = self._get_session()
        try:
            return await session.request(
                method, url, headers=headers, data=body, allow_redirects=False,
                server_hostname=server_hostname,
            )
        except aiohttp.ClientConnectorError:
            raise
        except (aiohttp.ClientError, TimeoutError) as e:
            raise FederationError(f"{method} {url.host}: {type(e).__name__}: {e}") from e
