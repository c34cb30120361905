"""Composition root: reads the config, builds every service, wires them and runs the listeners."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from federation.api import federation_routes
from federation.api.keys import ServerKeys
from homeserver import metrics
from homeserver.api import client_routes
from homeserver.api.context import (
    ACCOUNT_MANAGEMENT,
    ACCOUNTS,
    CONFIG,
    CROSS_SIGNING,
    DEVICES,
    DIRECTORY,
    E2E_KEYS,
    KEY_BACKUP,
    MEDIA,
    PUSH,
    RATELIMITER,
    ROOMS,
    SEARCH,
    SYNC,
    TAGS,
    TO_DEVICE,
)
from homeserver.api.http import matrix_middleware
from homeserver.config import Config
from homeserver.protocol.signing import read_signing_keys
from homeserver.services.account_management import AccountManagementService
from homeserver.services.accounts import AccountsService
from homeserver.services.cross_signing import CrossSigningService
from homeserver.services.device_lists import DeviceListService
from homeserver.services.devices import DevicesService
from homeserver.services.directory import DirectoryService
from homeserver.services.e2e_keys import E2EKeysService
from homeserver.services.key_backup import KeyBackupService
from homeserver.services.media import MediaService
from homeserver.services.notifier import Notifier
from homeserver.services.push import PushService
from homeserver.services.ratelimit import RateLimiter
from homeserver.services.room_engine import RoomEngine
from homeserver.services.rooms import RoomsService
from homeserver.services.search import SearchService
from homeserver.services.streams import Streams
from homeserver.services.sync import SyncService
from homeserver.services.tags import TagsService
from homeserver.services.uia import UserInteractiveAuth
from storage import stats
from storage.database import Database
from storage.embedded import EmbeddedPostgres
from storage.migrations import migrate
from storage.streams import StreamIdGenerator

log = logging.getLogger(__name__)

GAUGE_REFRESH_S = 15.0


async def open_database(config: Config) -> tuple[Database, EmbeddedPostgres | None]:
    """Connect to the configured database, or start the embedded one; then migrate it."""
    embedded = None
    dsn = config.database.url
    if dsn is None:
        embedded = EmbeddedPostgres(
            config.path(config.database.embedded_dir), config.database.embedded_bindir
        )
        dsn = await embedded.start()
    db = await Database.connect(
        dsn, min_size=config.database.pool_min_size, max_size=config.database.pool_max_size
    )
    try:
        async with db.connection() as conn:
            applied = await migrate(conn)
    except BaseException:
        await db.close()
        if embedded is not None:
            await embedded.stop()
        raise
    if applied:
        log.info("applied migrations %s", applied)
    return db, embedded


@dataclass
class Homeserver:
    """One running server: its database, services and listeners."""

    config: Config
    db: Database | None = None
    embedded: EmbeddedPostgres | None = None
    runners: list[web.AppRunner] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    _background: list[asyncio.Task[Any]] = field(default_factory=list)

    async def start(self) -> None:
        config = self.config
        db, self.embedded = await open_database(config)
        self.db = db
        async with db.connection() as conn:
            streams = Streams(
                events=await StreamIdGenerator.load(conn, "events", "stream_ordering"),
                account_data=await StreamIdGenerator.load(conn, "account_data", "stream_id"),
                receipts=await StreamIdGenerator.load(conn, "receipts", "stream_id"),
                # Typing lives in memory; starting from the clock keeps old tokens behind it.
                typing=StreamIdGenerator(int(time.time() * 1000)),
                to_device=await StreamIdGenerator.load_watermark(conn, "to_device"),
                device_lists=await StreamIdGenerator.load(
                    conn, "device_list_changes", "stream_id"
                ),
                presence=await StreamIdGenerator.load(conn, "presence", "stream_id"),
            )
        signing_key = read_signing_keys(config.path(config.server.signing_key_path).read_text())[0]
        server_name = config.server.server_name
        notifier = Notifier()
        ratelimiter = RateLimiter(config.rate_limits)
        engine = RoomEngine(
            db, server_name=server_name, signing_key=signing_key,
            max_members=config.rooms.max_members, notifier=notifier, stream=streams.events,
        )
        device_lists = DeviceListService(db, streams.device_lists, notifier, engine)
        e2e_keys = E2EKeysService(db, server_name, device_lists)
        accounts = AccountsService(db, config, ratelimiter, device_lists=device_lists)
        rooms = RoomsService(db, config, engine, accounts, ratelimiter)
        sync = SyncService(db, config, engine, notifier, streams, e2e_keys=e2e_keys)
        self._background.append(asyncio.create_task(sync.presence.run_idle_sweeper()))
        push = PushService(db, engine, sync.account_data, server_name)
        engine.observers.append(push)

        client = web.Application(
            client_max_size=config.limits.max_request_body_bytes,
            middlewares=[matrix_middleware],
        )
        client[CONFIG] = config
        client[ACCOUNTS] = accounts
        client[ROOMS] = rooms
        client[SYNC] = sync
        client[RATELIMITER] = ratelimiter
        client[E2E_KEYS] = e2e_keys
        uia = UserInteractiveAuth(db, accounts)
        client[CROSS_SIGNING] = CrossSigningService(db, device_lists, uia)
        client[DEVICES] = DevicesService(db, accounts, uia, device_lists)
        client[ACCOUNT_MANAGEMENT] = AccountManagementService(db, accounts, uia, engine)
        client[TO_DEVICE] = sync.to_device
        client[KEY_BACKUP] = KeyBackupService(db)
        client[DIRECTORY] = DirectoryService(db, engine)
        client[SEARCH] = SearchService(db, engine)
        client[TAGS] = TagsService(sync.account_data)
        client[MEDIA] = MediaService(db, config, ratelimiter)
        client[PUSH] = push
        client.add_routes(client_routes())
        listeners = config.listeners
        await self._listen("client", client, listeners.client.host, listeners.client.port)

        federation = web.Application(middlewares=[matrix_middleware])
        federation.add_routes(federation_routes(ServerKeys(server_name, signing_key)))
        if listeners.federation.port is not None:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(
                config.path(listeners.federation.tls_certificate_path),
                config.path(listeners.federation.tls_private_key_path),
            )
            await self._listen(
                "federation", federation, listeners.federation.host, listeners.federation.port,
                tls,
            )
        if listeners.metrics.port is not None:
            metrics_app = web.Application()
            metrics_app.router.add_get("/metrics", _serve_metrics)
            await self._listen(
                "metrics", metrics_app, listeners.metrics.host, listeners.metrics.port
            )
            self._background.append(asyncio.create_task(self._refresh_gauges()))
        log.info("Moot %s is up: %s", server_name, self.ports)

    async def _listen(
        self, name: str, app: web.Application, host: str, port: int | None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        if port is None:
            return
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=10.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=tls)
        await site.start()
        self.runners.append(runner)
        self.ports[name] = runner.addresses[0][1]  # the real port when the config says 0

    async def _refresh_gauges(self) -> None:
        assert self.db is not None
        while True:
            try:
                counts = await self.db.run(stats.get_counts)
                metrics.USERS.set(counts["users"])
                metrics.ROOMS.set(counts["rooms"])
                metrics.DEVICES.set(counts["devices"])
                pool = self.db.pool_stats()
                metrics.DB_POOL_SIZE.set(pool["size"])
                metrics.DB_POOL_IN_USE.set(pool["in_use"])
            except Exception:
                log.exception("refreshing gauges failed")
            await asyncio.sleep(GAUGE_REFRESH_S)

    async def stop(self) -> None:
        """Stop accepting, finish in-flight requests, close the pool, stop our PostgreSQL."""
        for task in self._background:
            task.cancel()
        for runner in reversed(self.runners):
            await runner.cleanup()
        self.runners.clear()
        if self.db is not None:
            await self.db.close()
        if self.embedded is not None:
            await self.embedded.stop()
        log.info("Moot stopped")


async def _serve_metrics(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})
