"""A loopback application service that bridges third-party networks, for the `/thirdparty/*`
and per-network room directory tests.

It answers the homeserver's `GET /_matrix/app/v1/thirdparty/...` from what the test gives it
(a protocol's description, the locations and users a lookup finds, or a status), records every
such request with its query and Authorization header, and can be told to hang until it is
stopped. Its identity and registration file are a `LoopbackAppService`'s (tests/appservice_peer.py)
with `protocols` added; it serves on that service's port in its place.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.appservice_peer import LoopbackAppService


@dataclass(frozen=True)
class Asked:
    """One request the bridge received: the path under /_matrix/app/v1, query, token."""

    path: str
    query: dict[str, str]
    authorization: str | None


@dataclass(frozen=True)
class Redirect:
    """An answer: 302 to this path under /_matrix/app/v1/."""

    path: str


@dataclass
class NetworkBridge:
    service: LoopbackAppService
    protocols: tuple[str, ...]
    # What it answers: JSON bodies by path under /_matrix/app/v1/thirdparty (anything else 404).
    answers: dict[str, Any] = field(default_factory=dict)
    # Registration keys besides the service's own and `protocols` (e.g. `namespaces`).
    registration: dict[str, Any] = field(default_factory=dict)
    hangs: bool = False  # never answer (until stopped)
    asked: list[Asked] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def id(self) -> str:
        return self.service.id

    @property
    def as_token(self) -> str:
        return self.service.as_token

    def write_registration(self, directory: Path) -> str:
        return self.service.write_registration(
            directory, protocols=list(self.protocols), **self.registration
        )

    async def up(self) -> None:
        app = web.Application()
        app.router.add_get("/_matrix/app/v1/thirdparty/{path:.*}", self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.service.port).start()

    async def down(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def paths_asked(self) -> list[str]:
        return [a.path for a in self.asked]

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        path = "thirdparty/" + request.match_info["path"]
        self.asked.append(Asked(path, dict(request.query), request.headers.get("Authorization")))
        if self.hangs:
            await self._release.wait()
        if path not in self.answers:
            return web.json_response({"errcode": "M_NOT_FOUND", "error": "unknown"}, status=404)
        answer = self.answers[path]
        if isinstance(answer, Redirect):
            raise web.HTTPFound("/_matrix/app/v1/" + answer.path)
        if isinstance(answer, bytes):  # a malformed answer, sent as is
            return web.Response(body=answer, content_type="application/json")
        return web.json_response(answer)
