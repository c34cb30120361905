"""A loopback application service for tests: it records the transactions, queries and pings
it receives (answering {} unless told otherwise), can be taken down and brought back on the
same port, and writes its own registration file."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.appservices import registration, write_registrations
from tests.federation_helpers import free_port

# What a test may plug in for queries: the path's user ID or alias -> the status to answer.
QueryHandler = Callable[[str], Awaitable[int]]


@dataclass
class Received:
    """One transaction PUT as the appservice saw it."""

    txn_id: str
    body: dict[str, Any]
    raw: bytes
    authorization: str | None
    answered: int


@dataclass
class LoopbackAppService:
    id: str
    hs_token: str = "hs-secret"
    as_token: str = ""
    port: int = field(default_factory=free_port)
    # Every transaction attempt, in arrival order, with the status it was answered.
    attempts: list[Received] = field(default_factory=list)
    pings: list[tuple[dict[str, Any], str | None]] = field(default_factory=list)
    user_queries: list[str] = field(default_factory=list)
    alias_queries: list[str] = field(default_factory=list)
    # The status transactions are answered with (200 when healthy).
    transaction_status: int = 200
    ping_status: int = 200
    # While set and not open, a transaction is held after its status is chosen (counted in
    # `held`), until the test opens it.
    transaction_gate: asyncio.Event | None = None
    held: int = 0
    ping_hangs: bool = False
    on_user_query: QueryHandler | None = None
    on_alias_query: QueryHandler | None = None
    runner: web.AppRunner | None = None
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        if not self.as_token:
            self.as_token = f"as-token-{self.id}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def up(self) -> None:
        app = web.Application()
        app.router.add_put("/_matrix/app/v1/transactions/{txn}", self._transaction)
        app.router.add_get("/_matrix/app/v1/users/{user}", self._user)
        app.router.add_get("/_matrix/app/v1/rooms/{alias}", self._alias)
        app.router.add_post("/_matrix/app/v1/ping", self._ping)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def down(self) -> None:
        """Stop listening: connections are refused until `up`."""
        self._release.set()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        self._release = asyncio.Event()

    def write_registration(self, directory: Path, **overrides: Any) -> str:
        """Its registration file (no namespaces unless `overrides` give some); the path."""
        fields: dict[str, Any] = {
            "url": self.url, "as_token": self.as_token, "hs_token": self.hs_token,
            "sender_localpart": f"{self.id}_bot", "rate_limited": False,
            "namespaces": {"users": [], "aliases": [], "rooms": []},
        }
        fields.update(overrides)
        [path] = write_registrations(directory, registration(self.id, **fields))
        return path

    # ---- what a test reads ---------------------------------------------------------------

    def accepted(self) -> list[Received]:
        """The transactions answered 2xx, each txnId once (a repeat of an accepted one is
        what the spec has the appservice ignore)."""
        seen: dict[str, Received] = {}
        for attempt in self.attempts:
            if 200 <= attempt.answered < 300 and attempt.txn_id not in seen:
                seen[attempt.txn_id] = attempt
        return list(seen.values())

    def events(self) -> list[dict[str, Any]]:
        return [e for t in self.accepted() for e in t.body["events"]]

    def event_ids(self) -> list[str]:
        return [e["event_id"] for e in self.events()]

    def ephemeral(self) -> list[dict[str, Any]]:
        return [e for t in self.accepted() for e in t.body.get("ephemeral", [])]

    # ---- handlers ------------------------------------------------------------------------

    async def _transaction(self, request: web.Request) -> web.Response:
        raw = await request.read()
        status = self.transaction_status
        if self.transaction_gate is not None:
            self.held += 1
            await self.transaction_gate.wait()
        self.attempts.append(Received(
            request.match_info["txn"], json.loads(raw), raw,
            request.headers.get("Authorization"), status,
        ))
        return web.json_response({} if status == 200 else {"errcode": "M_UNKNOWN"}, status=status)

    async def _user(self, request: web.Request) -> web.Response:
        user_id = request.match_info["user"]
        self.user_queries.append(user_id)
        status = await self.on_user_query(user_id) if self.on_user_query else 404
        return web.json_response({}, status=status)

    async def _alias(self, request: web.Request) -> web.Response:
        alias = request.match_info["alias"]
        self.alias_queries.append(alias)
        status = await self.on_alias_query(alias) if self.on_alias_query else 404
        return web.json_response({}, status=status)

    async def _ping(self, request: web.Request) -> web.Response:
        self.pings.append((await request.json(), request.headers.get("Authorization")))
        if self.ping_hangs:
            await self._release.wait()
        if self.ping_status != 200:
            return web.json_response({"errcode": "M_FORBIDDEN"}, status=self.ping_status)
        return web.json_response({})
