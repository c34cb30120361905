"""A push gateway on loopback that records every notification it is sent, for tests.

It answers as the spec's gateway contract (and Sygnal) does: HTTP 200 with `{"rejected": [...]}`
naming the pushkeys it was told to reject. `down` makes it answer 503 (counted in `refused`),
as a gateway behind a proxy does while it restarts.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

NOTIFY_PATH = "/_matrix/push/v1/notify"


class RecordingGateway:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []  # the `notification` objects, in order
        self.rejecting: set[str] = set()  # pushkeys answered as rejected
        self.down = False
        self.refused = 0  # requests answered 503 while down
        self.connections: set[object] = set()  # the TCP connections requests came on
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{NOTIFY_PATH}"

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_post(NOTIFY_PATH, self._notify)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _notify(self, request: web.Request) -> web.Response:
        self.connections.add(request.transport)
        if self.down:
            self.refused += 1
            return web.json_response({"error": "down"}, status=503)
        notification = (await request.json())["notification"]
        self.received.append(notification)
        pushkeys = [d["pushkey"] for d in notification["devices"]]
        return web.json_response({"rejected": [k for k in pushkeys if k in self.rejecting]})

    def events(self, pushkey: str | None = None) -> list[str]:
        """The event IDs received (for one pushkey), in order; badge updates left out."""
        return [
            n["event_id"] for n in self.received
            if "event_id" in n and (pushkey is None or n["devices"][0]["pushkey"] == pushkey)
        ]
