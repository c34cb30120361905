"""A loopback push gateway for `bench/load.py --pushers`, in a process of its own: it takes every
notification and counts.

It answers `POST /_matrix/push/v1/notify` the way a healthy gateway does (200,
`{"rejected": []}`) and records, per request, the pushkey and the bench message it is about
(`content.bench_id` and `content.bench_t_us`, present because the bench's pushers use the full
format). `GET /stats` answers what it recorded: how many pushes arrived, how many were
duplicates, and how long after the send started each arrived. It measures only; it neither
sends anything nor asserts.

Why its own process and a lean server: a real gateway runs on another machine, so its CPU is
no part of the server's cost; here it shares the 2 cores with the server and the load
generator, and inside the load generator (as an aiohttp server, ~190 µs of CPU a request) it
slowed the very senders whose rate the run compares. So it is a small asyncio protocol that
still parses each HTTP/1.1 request (request line, headers, a `Content-Length` body: what
Moot's and Synapse's push clients send) and its JSON, in a process the load generator starts
(`GatewayProcess` in `load.py`). Run alone: `python bench/push_gateway.py` prints its notify
URL and serves until its standard input closes.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any

NOTIFY_PATH = "/_matrix/push/v1/notify"
STATS_PATH = "/stats"
APP_ID = "org.example.moot.bench"
MAX_REQUEST_BYTES = 1024 * 1024
_OK = b'{"rejected":[]}'


@dataclass(slots=True)
class PushRecorder:
    """What the gateway received: (pushkey, bench id) pairs, badge-only updates, latencies."""

    arrivals: dict[tuple[str, str], int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    badges: int = 0
    other: int = 0  # notifications about anything but a bench message

    def record(self, body: bytes) -> None:
        arrived = time.time()
        parsed: Any = json.loads(body)
        notification = parsed.get("notification", {}) if isinstance(parsed, dict) else {}
        content = notification.get("content") or {}
        bench_id = content.get("bench_id")
        for device in notification.get("devices", []):
            if not isinstance(bench_id, str):
                if "event_id" in notification:
                    self.other += 1
                else:
                    self.badges += 1
                continue
            pair = (str(device.get("pushkey")), bench_id)
            self.arrivals[pair] = self.arrivals.get(pair, 0) + 1
            if self.arrivals[pair] == 1:
                self.latencies_ms.append(arrived * 1000 - int(content["bench_t_us"]) / 1000)

    def stats(self) -> dict[str, Any]:
        return {
            "received": len(self.arrivals),
            "duplicates": sum(n - 1 for n in self.arrivals.values()),
            "badges": self.badges, "other": self.other, "latencies_ms": self.latencies_ms,
        }


class _Gateway(asyncio.Protocol):
    """One client connection: requests parsed one after another, each answered at once."""

    def __init__(self, recorder: PushRecorder) -> None:
        self.recorder = recorder
        self.data = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        """Answer every complete request that arrived, the answers in one write (a client that
        pipelines sends many requests in one)."""
        self.data += data
        answers: list[bytes] = []
        close = self._serve(answers)
        assert self.transport is not None
        if answers:
            self.transport.write(b"".join(answers))
        if close:
            self.transport.close()

    def _serve(self, answers: list[bytes]) -> bool:
        """Answer the complete requests; whether the connection must close."""
        while True:
            end = self.data.find(b"\r\n\r\n")
            if end < 0:
                if len(self.data) > MAX_REQUEST_BYTES:
                    answers.append(_answer(431, b"{}", close=True))
                    return True
                return False
            lines = self.data[:end].decode("latin-1").split("\r\n")
            method, target, _version = lines[0].split(" ", 2)
            headers = dict(
                (name.strip().lower(), value.strip())
                for name, _, value in (line.partition(":") for line in lines[1:])
            )
            length = int(headers.get("content-length", "0"))
            if "transfer-encoding" in headers or length > MAX_REQUEST_BYTES:
                answers.append(_answer(411, b"{}", close=True))
                return True
            if len(self.data) < end + 4 + length:
                return False
            body, self.data = self.data[end + 4:end + 4 + length], self.data[end + 4 + length:]
            if method == "POST" and target == NOTIFY_PATH:
                self.recorder.record(body)
                answers.append(_answer(200, _OK))
            elif method == "GET" and target == STATS_PATH:
                answers.append(_answer(200, json.dumps(self.recorder.stats()).encode()))
            else:
                answers.append(_answer(404, b"{}"))


def _answer(status: int, body: bytes, close: bool = False) -> bytes:
    return (
        b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n"
        % (status, len(body), b"Connection: close\r\n" if close else b"") + body
    )


async def serve() -> None:
    """Print the notify URL, then serve until standard input closes."""
    recorder = PushRecorder()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Gateway(recorder), sock=sock)
    print(f"http://127.0.0.1:{sock.getsockname()[1]}{NOTIFY_PATH}", flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


def pusher_body(url: str, pushkey: str) -> dict[str, Any]:
    """`POST /pushers/set` for an http pusher to the bench gateway, in the full format (the
    event's content carries the bench id and send time)."""
    return {
        "kind": "http", "app_id": APP_ID, "pushkey": pushkey,
        "app_display_name": "bench", "device_display_name": "bench", "lang": "en",
        "data": {"url": url},
    }


if __name__ == "__main__":
    asyncio.run(serve())
