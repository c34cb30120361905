"""Every listener limits how long a request may take to arrive and how many connections it
holds (issue 22 item 14: 300 connections that each sent half a header line were held open for
good). The timeouts are set to a second or two here; the defaults are 30 s and 60 s.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from aiohttp import web

from tests.conftest import MakeServer, RunningServer
from tests.helpers import MatrixApi
from tests.raw_http import RawConnection, request_head

VERSIONS = "/_matrix/client/versions"
FAST = {"limits.header_timeout_s": 1.0, "limits.request_timeout_s": 2.0}
# What each listener serves on a plain GET, and whether it speaks TLS.
LISTENERS = {
    "client": (VERSIONS, False),
    "federation": ("/_matrix/federation/v1/version", True),
    "metrics": ("/metrics", False),
}


async def connect(server: RunningServer, listener: str = "client") -> RawConnection:
    return await RawConnection.open(server.hs.ports[listener], tls=LISTENERS[listener][1])


async def get(connection: RawConnection, path: str = VERSIONS) -> bytes:
    """A complete request on ``connection``, the connection kept alive; the response head."""
    await connection.send(request_head("GET", path))
    return await read_response(connection)


async def read_response(connection: RawConnection) -> bytes:
    """The next response's head, its body read and dropped."""
    head = await connection.read_response_head()
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    await connection.reader.readexactly(length)
    return head


@pytest.mark.parametrize("listener", list(LISTENERS))
async def test_a_request_whose_headers_stall_is_cut_off(
    make_homeserver: MakeServer, listener: str
) -> None:
    server = await make_homeserver(FAST)
    path = LISTENERS[listener][0]
    silent = await connect(server, listener)
    half_a_line = await connect(server, listener)
    await half_a_line.send(f"GET {path} HTTP/1.1\r\nHost: 127".encode())
    kept_alive = await connect(server, listener)
    assert (await get(kept_alive, path)).startswith(b"HTTP/1.1 200 ")
    await kept_alive.send(b"GET ")  # the next request starts, and stops

    for connection in (silent, half_a_line, kept_alive):
        # Closed without an answer (TimeoutError, and the test fails, if it stays open).
        assert await connection.read_until_closed() == b""


async def test_headers_that_come_slowly_but_in_time_are_answered(
    make_homeserver: MakeServer,
) -> None:
    server = await make_homeserver(FAST)
    connection = await connect(server)
    head = request_head("GET", VERSIONS)
    for part in (head[:10], head[10:30], head[30:]):
        await connection.send(part)
        await asyncio.sleep(0.3)  # well within the one-second header timeout in total
    assert (await connection.read_response_head()).startswith(b"HTTP/1.1 200 ")
    connection.close()


async def test_a_trickling_body_is_cut_off(
    make_homeserver: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = await make_homeserver(FAST)
    connection = await connect(server)
    await connection.send(request_head("POST", "/_matrix/client/v3/login", {
        "Content-Type": "application/json", "Content-Length": "1000",
    }) + b"{")

    async def trickle() -> None:
        # A byte every tenth of a second: the headers were in time, the body never is.
        while True:
            connection.writer.write(b" ")
            await asyncio.sleep(0.1)

    trickling = asyncio.create_task(trickle())
    try:
        assert await connection.read_until_closed() == b""
    finally:
        trickling.cancel()
    # The handler reading the body learns the client is gone: no error of the server's.
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_body_arriving_at_the_minimum_rate_earns_more_time(
    make_homeserver: MakeServer,
) -> None:
    """A large upload over a slow link outlasts the request timeout as long as its bytes keep
    coming at `min_body_bytes_per_s`: here 4000 bytes at ~1300 bytes/s (3 s, with a 2 s
    timeout and a 1000 bytes/s minimum) are answered."""
    server = await make_homeserver({**FAST, "limits.min_body_bytes_per_s": 1000})
    connection = await connect(server)
    body = b"{" + b" " * 3998 + b"}"
    await connection.send(request_head("POST", "/_matrix/client/v3/login", {
        "Content-Type": "application/json", "Content-Length": str(len(body)),
    }))
    for start in range(0, len(body), 400):
        await connection.send(body[start:start + 400])
        await asyncio.sleep(0.3)  # the client's pace, not a wait for the server
    assert (await connection.read_response_head()).startswith(b"HTTP/1.1 400 ")
    connection.close()


async def test_a_long_poll_is_not_a_slow_request(
    make_homeserver: MakeServer, http: Any,
) -> None:
    """The request timeout counts the request's arrival, not the time taken to answer it."""
    server = await make_homeserver(FAST)
    api = MatrixApi(server.url, http)
    alice = await api.register("alice")
    first = await api.sync(alice)
    status, body = await api.request(
        "GET", "sync", token=alice.token,
        params={"since": first["next_batch"], "timeout": "3000"},
    )
    assert status == 200 and "next_batch" in body


async def test_a_kept_alive_connection_does_not_hold_its_last_answer(
    homeserver: RunningServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Between requests (a long-poll's wait among them) a connection keeps no sent body: with
    hundreds of idle sliding sync connections, each previous answer would stay in memory.

    The answers are caught as they are prepared and looked at once sent (not by walking the
    heap with the garbage collector, which in a whole test run blocks the loop for longer
    than the loop guard allows)."""
    prepared: list[web.StreamResponse] = []
    prepare = web.StreamResponse.prepare

    async def recording(self: web.StreamResponse, request: web.BaseRequest) -> Any:
        prepared.append(self)
        return await prepare(self, request)

    monkeypatch.setattr(web.StreamResponse, "prepare", recording)
    connection = await connect(homeserver)
    try:
        assert (await get(connection)).startswith(b"HTTP/1.1 200 ")
        [answer] = [r for r in prepared if isinstance(r, web.Response)]
        assert answer.body is None
    finally:
        connection.close()


async def test_connections_beyond_the_cap_close_idle_ones_or_are_refused(
    make_homeserver: MakeServer,
) -> None:
    server = await make_homeserver({"limits.max_connections": 3})
    busy = [await connect(server) for _ in range(3)]
    for connection in busy:
        await connection.send(b"GET " + VERSIONS.encode() + b" HTTP/1.1\r\nHost: x\r\n")

    # Every connection has a request arriving: a fourth is told so, and closed.
    refused = await connect(server)
    answer = await refused.read_until_closed()
    assert answer.startswith(b"HTTP/1.1 503 "), answer
    assert b"Retry-After: 1" in answer and b'"errcode":"M_UNKNOWN"' in answer

    # One request completes; its connection, kept alive and idle, gives way to a new one.
    await busy[0].send(b"\r\n")
    assert (await read_response(busy[0])).startswith(b"HTTP/1.1 200 ")
    fresh = await connect(server)
    assert (await get(fresh)).startswith(b"HTTP/1.1 200 ")
    assert await busy[0].read_until_closed() == b""

    # Connections that never sent anything give way too, oldest first.
    for connection in busy[1:]:
        connection.close()
    fresh.close()
    silent = [await connect(server) for _ in range(3)]
    newest = await connect(server)
    assert (await get(newest)).startswith(b"HTTP/1.1 200 ")
    assert await silent[0].read_until_closed() == b""
    for connection in (*silent[1:], newest):
        connection.close()
