"""A loopback push gateway for `bench/load.py --pushers`: it takes every notification and counts.

It answers `POST /_matrix/push/v1/notify` the way a healthy gateway does (200,
`{"rejected": []}`) and records, per request, the pushkey and the bench message it is about
(`content.bench_id` and `content.bench_t_us`, present because the bench's pushers use the full
format). From that the run reports how many pushes arrived, how many were duplicates, how many
it expected and never got, and how long after the send started each arrived. It measures only;
it neither sends anything nor asserts.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

NOTIFY_PATH = "/_matrix/push/v1/notify"
APP_ID = "org.example.moot.bench"


@dataclass(slots=True)
class PushRecorder:
    """What the gateway received: (pushkey, bench id) pairs, badge-only updates, latencies."""

    arrivals: dict[tuple[str, str], int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    badges: int = 0
    other: int = 0  # notifications about anything but a bench message
    progress: asyncio.Event = field(default_factory=asyncio.Event)  # set on every request

    async def notify(self, request: web.Request) -> web.Response:
        arrived = time.time()
        body: Any = await request.json()
        notification = body.get("notification", {}) if isinstance(body, dict) else {}
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
        self.progress.set()
        return web.json_response({"rejected": []})

    def distinct(self) -> int:
        return len(self.arrivals)

    def duplicates(self) -> int:
        return sum(n - 1 for n in self.arrivals.values())


async def start_gateway(recorder: PushRecorder) -> tuple[web.AppRunner, str]:
    """The gateway on a loopback port the kernel picks; (its runner, the pushers' `data.url`)."""
    app = web.Application()
    app.router.add_post(NOTIFY_PATH, recorder.notify)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    return runner, f"http://127.0.0.1:{sock.getsockname()[1]}{NOTIFY_PATH}"


def pusher_body(url: str, pushkey: str) -> dict[str, Any]:
    """`POST /pushers/set` for an http pusher to the bench gateway, in the full format (the
    event's content carries the bench id and send time)."""
    return {
        "kind": "http", "app_id": APP_ID, "pushkey": pushkey,
        "app_display_name": "bench", "device_display_name": "bench", "lang": "en",
        "data": {"url": url},
    }
