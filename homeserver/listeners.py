"""Listening sockets with limits: how long a request may take to arrive, and how many
connections a listener holds.

aiohttp closes a connection that stays idle for its keep-alive timeout, but has no limit on
how long the headers or the body of a request may take to arrive, nor on the number of
connections: 300 clients that each send half a header line held 300 connections for good.
This module adds both, for every listener `app.py` starts (client, federation, metrics).

Theory of operation. Each connection is watched by its protocol, :class:`GuardedRequestHandler`
(aiohttp's, plus a timer and a phase):

- ``fresh``: connected, nothing received. ``receiving``: the first byte of a request has come;
  its headers must be complete within ``header_timeout_s`` and its body within
  ``request_timeout_s`` of that byte (for the first request, of the connection), plus one
  second for every ``min_body_bytes_per_s`` bytes of body received: a body that keeps coming
  at that rate is never cut off, one that trickles slower is. ``handling``:
  the request has fully arrived; the time its handler takes (a /sync long-poll) is not
  limited here. ``idle``: between requests on a kept-alive connection.
- Headers are complete when aiohttp makes the request object (the server's request factory
  tells the protocol), the body when its stream reaches its end.
- A timer that finds its request still arriving closes the connection without an answer
  (as nginx does for its client_header_timeout and client_body_timeout).
- At most ``max_connections`` per listener. A new connection beyond them first closes the
  longest-waiting connection that is ``fresh`` or ``idle`` (nginx reuses idle keep-alive
  connections the same way); when every connection has a request in progress, the new one
  is answered ``503`` with ``Retry-After`` and closed, so a client learns why and retries.

Pipelined requests (rare: browsers, Matrix clients and reverse proxies do not pipeline) are
watched from their first byte seen after the previous request has arrived; one queued behind
a handler that runs longer than the header timeout is cut off with its connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader

from homeserver import metrics

log = logging.getLogger(__name__)

FRESH, RECEIVING, HANDLING, IDLE = "fresh", "receiving", "handling", "idle"

OVER_CAPACITY = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: application/json\r\n"
    b"Retry-After: 1\r\n"
    b"Connection: close\r\n"
    b"Content-Length: 81\r\n\r\n"
    b'{"errcode":"M_UNKNOWN","error":"The server has too many connections; try again."}'
)


@dataclass(frozen=True, slots=True)
class ListenerLimits:
    header_timeout_s: float
    request_timeout_s: float
    min_body_bytes_per_s: int
    max_connections: int


@dataclass
class ConnectionGuard:
    """The connections of one listener, oldest first, and the limits they live by."""

    name: str  # the listener, as metrics label it
    limits: ListenerLimits
    connections: dict[GuardedRequestHandler, None] = field(default_factory=dict)

    def admit(self, handler: GuardedRequestHandler) -> bool:
        """Make room for ``handler`` if it takes closing an idle connection; False when every
        connection is busy with a request (``handler`` is then refused)."""
        if len(self.connections) >= self.limits.max_connections:
            waiting = next((c for c in self.connections if c.phase in (FRESH, IDLE)), None)
            if waiting is None:
                self.closed("over_capacity")
                return False
            self.closed("idle_evicted")
            waiting.close_now()
        self.connections[handler] = None
        metrics.HTTP_CONNECTIONS.labels(self.name).set(len(self.connections))
        return True

    def release(self, handler: GuardedRequestHandler) -> None:
        if handler in self.connections:  # a refused connection never was
            del self.connections[handler]
            metrics.HTTP_CONNECTIONS.labels(self.name).set(len(self.connections))

    def closed(self, reason: str) -> None:
        metrics.HTTP_CONNECTIONS_CLOSED.labels(self.name, reason).inc()


class GuardedRequestHandler(web.RequestHandler):
    """aiohttp's connection protocol with the timers and the cap of :class:`ConnectionGuard`."""

    def __init__(self, manager: web.Server, *, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.guard = guard
        self.phase = FRESH
        self._payload: StreamReader | None = None
        self._header_timer: asyncio.TimerHandle | None = None
        self._request_timer: asyncio.TimerHandle | None = None
        self._request_deadline = 0.0  # loop time; moved later as body bytes arrive
        self._body_bytes = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if not self.guard.admit(self):
            assert isinstance(transport, asyncio.Transport)
            transport.write(OVER_CAPACITY)
            self.close_now()
            return
        self._start_timers()  # the first request's clock starts with the connection

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_timers()
        self.guard.release(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if data and self.phase != RECEIVING:
            if self.phase != FRESH:  # a fresh connection's timers run since it was made
                self._start_timers()
            self.phase = RECEIVING
        if self._payload is not None:
            self._body_bytes += len(data)
        super().data_received(data)
        self._check_body()

    def headers_received(self, payload: StreamReader) -> None:
        """The request factory's news: a request's headers are complete."""
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        self._payload = payload
        self._body_bytes = 0
        self.phase = RECEIVING
        self._check_body()

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        """aiohttp's last step of every request: after it, a kept-alive connection waits."""
        result = await super().finish_response(request, resp, start_time)
        if isinstance(resp, web.Response):
            # Sent: aiohttp's connection loop holds the last response until the next request
            # on the connection is answered, so a long-poll would keep the previous answer's
            # body (some 30 kB for a sliding sync first response) for the whole of its wait.
            resp.body = None
        # Also when the answer came before the body was read (a 413, a 401): the next bytes
        # start the next request's clock, not this one's old timers.
        self._payload = None
        self._stop_timers()
        self.phase = IDLE
        return result

    def close_now(self) -> None:
        self._stop_timers()
        self.force_close()

    def _check_body(self) -> None:
        if self._payload is not None and self._payload.is_eof():
            self._payload = None
            self.phase = HANDLING
            self._stop_timers()

    def _start_timers(self) -> None:
        loop = asyncio.get_running_loop()
        limits = self.guard.limits
        self._stop_timers()
        self._header_timer = loop.call_later(limits.header_timeout_s, self._expire, "header")
        self._request_deadline = loop.time() + limits.request_timeout_s
        self._request_timer = loop.call_at(self._request_deadline, self._request_due)

    def _stop_timers(self) -> None:
        for timer in (self._header_timer, self._request_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._request_timer = None

    def _request_due(self) -> None:
        """The request timer: a body still coming at the minimum rate has earned more time."""
        earned = self._body_bytes / self.guard.limits.min_body_bytes_per_s
        deadline = self._request_deadline + earned
        loop = asyncio.get_running_loop()
        if self.phase == RECEIVING and deadline > loop.time():
            self._request_timer = loop.call_at(deadline, self._request_due)
            self._request_deadline, self._body_bytes = deadline, 0
            return
        self._expire("request")

    def _expire(self, which: str) -> None:
        if self.phase in (HANDLING, IDLE):
            return
        log.info("closing a connection to %s: its request took longer than the %s timeout",
                 self.guard.name, which)
        self.guard.closed(f"{which}_timeout")
        self.close_now()


class GuardedServer(web.Server):
    """aiohttp's low-level server, making :class:`GuardedRequestHandler` protocols."""

    def __init__(self, plain: web.Server, guard: ConnectionGuard) -> None:
        super().__init__(
            plain.request_handler, request_factory=self._request_factory(plain.request_factory),
            handler_cancellation=plain.handler_cancellation, **plain._kwargs,
        )
        self.guard = guard

    def __call__(self) -> GuardedRequestHandler:
        return GuardedRequestHandler(self, loop=self._loop, guard=self.guard, **self._kwargs)

    @staticmethod
    def _request_factory(plain: Callable[..., web.BaseRequest]) -> Callable[..., web.BaseRequest]:
        def make(
            message: RawRequestMessage, payload: StreamReader, protocol: web.RequestHandler,
            writer: AbstractStreamWriter, task: asyncio.Task[None],
        ) -> web.BaseRequest:
            if isinstance(protocol, GuardedRequestHandler):
                protocol.headers_received(payload)
            return plain(message, payload, protocol, writer, task)

        return make


class GuardedRunner(web.AppRunner):
    """An `AppRunner` whose connections live by ``limits``."""

    def __init__(self, app: web.Application, name: str, limits: ListenerLimits,
                 **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.guard = ConnectionGuard(name, limits)

    async def _make_server(self) -> web.Server:
        return GuardedServer(await super()._make_server(), self.guard)
