"""HTTP to push gateways, under the address policy: the URL is the user's choice.

A pusher's `data.url` is any URL a user typed, so without a check any user could make this
server POST to its own loopback, the cloud metadata service or the office network
(server-side request forgery). The gateway client is bound to `push.allow_private_addresses`
through the same :class:`~homeserver.services.checked_resolver.CheckedResolver` URL previews
use: every address a name resolves to is checked and the connection is pinned to a checked
one. `check_url` is the earlier, friendlier refusal at `/pushers/set`; the check at delivery
is the one that holds (DNS answers change).

Plain `http` is accepted as well as `https`: Sygnal serves plain HTTP behind its operator's
proxy, and the spec's HTTPS wording is advice to clients. No redirects are followed, no
cookies kept, no proxy from the environment used.

The requests go over a lean HTTP/1.1 client of its own (asyncio protocols and the bounded
parser of `protocol/http1.py`) rather than aiohttp's: a busy server sends one request per
notification and pusher, and aiohttp's per-request machinery (its request and response
objects, tracing hooks, cookie and header handling, stream readers) cost about five times
what writing the request and parsing a JSON answer do (measured: ~240 against ~50 µs of
CPU per request), CPU taken from the room writer that shares the process. Connections are
kept alive per gateway (idle ones are closed after `KEEPALIVE_S`), each pinned at connect
time to an address the policy allowed.

What remains is the kernel's: on loopback a socket write was most of a push's cost. So the
requests to one gateway share a connection, pipelined (RFC 9112 section 9.3.2; Sygnal's
Twisted, aiohttp, nginx and the usual servers answer pipelined requests in order), and the
requests made in one turn of the event loop (an event's pushes to many pushers) go out in
one write. A request made while earlier ones on its connection are unanswered waits for
their answers (at most `HOLD_S`), as Nagle's algorithm does for segments: the answers to one
write wake their pushers' next requests together, and those go out in one write too. Without
the hold, the pushers drifted apart (an answer read alone sends its pusher's next request
alone) until a write carried one or two requests (measured with 16 pushers: 1.4 requests a
write; with it, 12). Idle, nothing is unanswered and nothing waits. A second connection
opens only when one has `PIPELINE` requests waiting (at most `PER_GATEWAY`). Each pusher
still has one request in flight, so its gateway sees its notifications in order. The RFC
advises against pipelining a method that is not idempotent; a push is, in effect, since the
spec tells gateways to deduplicate by `event_id`. When a connection fails (closed,
malformed, unanswered for `REQUEST_TIMEOUT_S`), every request waiting on it fails and its
pusher retries after its backoff, as for any failure.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Any

import orjson
from yarl import URL

from homeserver.protocol import http1
from homeserver.protocol.addresses import AddressPolicy, ip_literal, numeric_ipv4
from homeserver.services.checked_resolver import AddressRefused, CheckedResolver, check_literal
from homeserver.services.host_resolver import ResolveFailed, SystemResolver

DNS_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 20.0
CONNECT_TIMEOUT_S = 5.0
KEEPALIVE_S = 15.0  # an idle connection older than this is closed rather than reused
PER_GATEWAY = 10  # connections to one gateway at most
PIPELINE = 16  # requests waiting on one connection before another is opened
# The longest a request waits for the answers to those written before it on its connection
# (see `_Connection`); none waits when nothing is unanswered.
HOLD_S = 0.002
MAX_ANSWER_BYTES = 64 * 1024  # a `rejected` list of a few pushkeys
USER_AGENT = "Moot push (Matrix homeserver)"
_HEADERS = f"User-Agent: {USER_AGENT}\r\n".encode()


class GatewayFailed(Exception):
    """The gateway could not be reached, or did not accept the notification."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status it answered, if it answered


@dataclass(frozen=True, slots=True)
class _Target:
    """A gateway URL as the client uses it: where to connect and what to write."""

    url: URL
    tls: bool
    host: str  # the name (or literal, without brackets) to resolve or connect to
    port: int
    path: str  # the request target
    host_header: str


@lru_cache(maxsize=1024)
def _target(url: str) -> _Target:
    """ValueError for a URL this client cannot POST to."""
    parsed = URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.raw_host or parsed.port is None:
        raise ValueError(f"not an http(s) URL with a host: {url[:200]}")
    host = parsed.raw_host
    bracketed = f"[{host}]" if ":" in host else host
    default = parsed.is_default_port()
    return _Target(
        parsed, parsed.scheme == "https", host, parsed.port, parsed.raw_path_qs or "/",
        bracketed if default else f"{bracketed}:{parsed.port}",
    )


def _encode(body: dict[str, Any]) -> bytes:
    # orjson writes integers of 64 bits at most; event content may hold larger ones.
    try:
        return orjson.dumps(body)
    except TypeError:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _decode(answer: bytes) -> Any:
    """The answer's JSON, None if it is not JSON. orjson reads it in a twentieth of the time,
    but not integers over 64 bits (which json does)."""
    try:
        return orjson.loads(answer)
    except ValueError:
        pass
    try:
        return json.loads(answer)
    except ValueError:
        return None


class _Connection(asyncio.Protocol):
    """One connection to a gateway. Requests are written as they come, those of one turn of
    the event loop together, and the responses (which HTTP/1.1 returns in request order)
    handed to the requests waiting in turn."""

    def __init__(self) -> None:
        # (bound once: `asyncio.get_running_loop` makes a getpid system call in Python 3.11)
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.data = b""
        self.done = False  # closed, or closing: it takes no more requests
        self.idle_since = 0.0
        self._waiting: deque[asyncio.Future[http1.Response]] = deque()
        self._out: list[bytes] = []  # requests not written yet (the last of `_waiting`)
        self._written_at: deque[float] = deque()  # when each unanswered request was written
        self._hold: asyncio.TimerHandle | None = None
        self._watchdog: asyncio.TimerHandle | None = None

    @property
    def in_flight(self) -> int:
        return len(self._waiting)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.idle_since = time.monotonic()

    def exchange(self, request: bytes) -> asyncio.Future[http1.Response]:
        """The response to `request`, once the gateway answered it and those before it."""
        loop = self.loop
        answer: asyncio.Future[http1.Response] = loop.create_future()
        if self.done:  # it failed while the request waited for it to connect
            answer.set_exception(ConnectionError("the connection closed"))
            return answer
        self._waiting.append(answer)
        self._out.append(request)
        if len(self._out) == 1:
            if self._written_at:  # wait for their answers, which wake the requests' next ones
                self._hold = loop.call_later(HOLD_S, self._flush)
            else:
                loop.call_soon(self._flush)
        return answer

    def _flush(self) -> None:
        if self._hold is not None:
            self._hold.cancel()
            self._hold = None
        if self._out and self.transport is not None and not self.done:
            self.transport.write(b"".join(self._out))
            now = time.monotonic()
            self._written_at.extend(now for _ in self._out)
            if self._watchdog is None:
                self._watchdog = self.loop.call_later(
                    REQUEST_TIMEOUT_S, self._check_answered
                )
        self._out.clear()

    def _check_answered(self) -> None:
        """The gateway must answer each request within `REQUEST_TIMEOUT_S`; one that does not
        holds up every request behind it, so the connection fails. One timer a connection,
        not one a request: it looks at the oldest unanswered request only (answers come in
        order), and runs again when that one is due."""
        self._watchdog = None
        if not self._written_at:
            return
        due = self._written_at[0] + REQUEST_TIMEOUT_S
        if time.monotonic() >= due:
            self.fail(TimeoutError(f"no answer within {REQUEST_TIMEOUT_S:.0f} s"))
        else:
            self._watchdog = self.loop.call_later(due - time.monotonic(), self._check_answered)

    def data_received(self, data: bytes) -> None:
        self.data += data
        self._parse(eof=False)

    def eof_received(self) -> bool:
        self._parse(eof=True)
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._parse(eof=True)

    def _parse(self, eof: bool) -> None:
        while self._written_at:
            try:
                found = http1.parse_response(self.data, eof, MAX_ANSWER_BYTES)
            except ValueError as e:
                self.fail(e)
                return
            if found is None:
                return
            response, used = found
            self.data = self.data[used:]
            self._written_at.popleft()
            if not self._written_at and self._out:  # after the tasks these answers wake
                self.loop.call_soon(self._flush)
            answer = self._waiting.popleft()
            if not answer.done():  # (its request timed out meanwhile)
                answer.set_result(response)
            if not response.keep_alive:
                self.fail(ConnectionError("the gateway closed the connection"))
                return
        self.idle_since = time.monotonic()
        if eof or self.data:  # closed, or bytes that no request asked for
            self.fail(ConnectionError("the connection closed"))

    def fail(self, error: Exception) -> None:
        """Close the connection; the requests still waiting on it fail with `error`."""
        self.done = True
        for timer in (self._hold, self._watchdog):
            if timer is not None:
                timer.cancel()
        while self._waiting:
            answer = self._waiting.popleft()
            if not answer.done():
                answer.set_exception(error)
        if self.transport is not None:
            self.transport.close()


@dataclass(slots=True)
class _Pool:
    """The connections to one gateway origin, and the one being made."""

    conns: list[_Connection] = field(default_factory=list)
    connecting: asyncio.Future[_Connection] | None = None

    def pick(self, now: float) -> _Connection | None:
        """The open connection with the fewest requests waiting, unless it has `PIPELINE`
        and another may be opened; idle ones older than `KEEPALIVE_S` are closed."""
        for conn in [c for c in self.conns if c.done or (
            not c.in_flight and now - c.idle_since >= KEEPALIVE_S
        )]:
            conn.fail(ConnectionError("idle too long"))
            self.conns.remove(conn)
        best = min(self.conns, key=lambda c: c.in_flight, default=None)
        if best is None or (best.in_flight >= PIPELINE and len(self.conns) < PER_GATEWAY):
            return None
        return best


class PushGatewayClient:
    """One client for every push gateway, keeping connections alive per gateway."""

    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy
        self._lookup = SystemResolver(timeout_s=DNS_TIMEOUT_S)
        self._pools: dict[tuple[bool, str, int], _Pool] = {}
        self._tls: ssl.SSLContext | None = None

    async def close(self) -> None:
        for pool in self._pools.values():
            for conn in pool.conns:
                conn.fail(ConnectionError("the client closed"))
        self._pools.clear()
        self._lookup.close()

    async def check_url(self, url: str) -> None:
        """AddressRefused if the URL's host is a forbidden address, or a name that resolves
        only to forbidden addresses. A name that does not resolve now is accepted: it may
        resolve later, and delivery checks every address it connects to anyway."""
        try:
            parsed = URL(url)
            host = parsed.raw_host or ""
            numeric = numeric_ipv4(host)
            literal = parsed if numeric is None else parsed.with_host(str(numeric))
            check_literal(self.policy, literal)
            await CheckedResolver(self.policy, self._lookup).resolve(host, parsed.port or 0)
        except ResolveFailed:
            return
        except ValueError as e:  # UnicodeError too: a label IDNA cannot encode
            raise AddressRefused(f"not a usable host: {e}") from None

    async def notify(self, url: str, body: dict[str, Any]) -> Any:
        """POST the notification; the gateway's JSON answer (None if it is not JSON).
        AddressRefused for a forbidden address, GatewayFailed for everything else."""
        try:
            target = _target(url)
            request = http1.request(target.path, target.host_header, _HEADERS, _encode(body))
            response = await self._exchange(target, request)
        except (AddressRefused, GatewayFailed):
            raise
        except (ResolveFailed, OSError, TimeoutError, ValueError) as e:
            raise GatewayFailed(f"{url}: {type(e).__name__}: {e}") from None
        if response.status != 200:
            raise GatewayFailed(f"{target.host} answered {response.status}", response.status)
        return _decode(response.body)

    async def _exchange(self, target: _Target, request: bytes) -> http1.Response:
        """The response to `request` on a kept-alive connection to the gateway, or a new one."""
        key = (target.tls, target.host, target.port)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _Pool()
        conn = pool.pick(time.monotonic())
        if conn is None:
            if pool.connecting is None:  # one at a time: the requests meanwhile share it
                pool.connecting = asyncio.ensure_future(self._connect(target))
                pool.connecting.add_done_callback(partial(_connected, pool))
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                conn = await asyncio.shield(pool.connecting)
        return await conn.exchange(request)

    async def _connect(self, target: _Target) -> _Connection:
        """A connection to an address of the gateway's host that the policy allows (a
        literal is checked; a name's addresses are resolved and checked here, and the
        connection is made to one of those, never to a second lookup's answer)."""
        literal = ip_literal(target.host)
        if literal is not None:
            check_literal(self.policy, target.url)
            addresses = [target.host]
        else:
            resolver = CheckedResolver(self.policy, self._lookup)
            addresses = [r["host"] for r in await resolver.resolve(target.host, target.port)]
        tls = None
        if target.tls:
            if self._tls is None:
                self._tls = ssl.create_default_context()
            tls = self._tls
        loop = asyncio.get_running_loop()
        failure: OSError | TimeoutError | None = None
        for address in addresses:
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    _, conn = await loop.create_connection(
                        _Connection, address, target.port, ssl=tls,
                        server_hostname=target.host if tls else None,
                    )
                return conn
            except (OSError, TimeoutError) as e:
                failure = e
        raise GatewayFailed(f"cannot connect to {target.host}:{target.port}: {failure}")


def _connected(pool: _Pool, connecting: asyncio.Future[_Connection]) -> None:
    pool.connecting = None
    if not connecting.cancelled() and connecting.exception() is None:
        pool.conns.append(connecting.result())
