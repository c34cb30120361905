"""Composition root: reads the config, builds every service, wires them and runs the listeners."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from federation.api.context import OPENID as FEDERATION_OPENID
from federation.edus import InboundEdus
from federation.stack import Federation, build_federation
from homeserver import metrics
from homeserver.api import client_routes, worker_routes
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
    REGISTRATION,
    ROOMS,
    SEARCH,
    SYNC,
    TAGS,
    TO_DEVICE,
)
from homeserver.api.http import matrix_middleware
from homeserver.config import Config, ListenerConfig
from homeserver.listeners import GuardedRunner, ListenerLimits
from homeserver.protocol.signing import read_signing_keys
from homeserver.services.account_management import AccountManagementService
from homeserver.services.accounts import AccountsService
from homeserver.services.censoring import censor_current_state
from homeserver.services.cross_signing import CrossSigningService
from homeserver.services.device_list_updates import DeviceListUpdates
from homeserver.services.device_lists import DeviceListService
from homeserver.services.devices import DevicesService
from homeserver.services.directory import DirectoryService
from homeserver.services.e2e_keys import E2EKeysService
from homeserver.services.ephemeral import TypingService
from homeserver.services.incoming_events import IncomingEvents
from homeserver.services.key_backup import KeyBackupService
from homeserver.services.media import MediaService
from homeserver.services.notifier import Notifier
from homeserver.services.outbound_edus import OutboundEdus, servers_of, users_sharing_room
from homeserver.services.push import PushService
from homeserver.services.ratelimit import RateLimiter
from homeserver.services.recent_events import RecentEvents
from homeserver.services.registration import RegistrationService
from homeserver.services.remote_server_limits import RemoteServerLimits
from homeserver.services.replication import (
    MainReplication,
    Replicated,
    WorkerReplication,
    WorkerSyncService,
)
from homeserver.services.room_engine import RoomEngine
from homeserver.services.rooms import RoomsService
from homeserver.services.search import SearchService
from homeserver.services.streams import Streams, follower_streams, load_streams
from homeserver.services.sync import SyncService
from homeserver.services.tags import TagsService
from homeserver.services.uia import UserInteractiveAuth
from storage import stats
from storage.database import Database
from storage.embedded import EmbeddedPostgres
from storage.migrations import check_schema, migrate

log = logging.getLogger(__name__)

GAUGE_REFRESH_S = 15.0
# A recent-events cache that has seen nothing: every read goes to the database.
NEVER = 2**62


async def open_database(
    config: Config, *, run_migrations: bool = True
) -> tuple[Database, EmbeddedPostgres | None]:
    """Connect to the configured database, or start the embedded one; then migrate it (or,
    for a worker, which never migrates, check that the main process has)."""
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
    applied: list[int] = []
    try:
        async with db.connection() as conn:
            if run_migrations:
                applied = await migrate(conn)
            else:
                await check_schema(conn)
    except BaseException:
        await db.close()
        if embedded is not None:
            await embedded.stop()
        raise
    if applied:
        log.info("applied migrations %s", applied)
    return db, embedded


@dataclass(slots=True)
class Core:
    """The services every process builds: what /sync needs and what they stand on."""

    streams: Streams
    notifier: Notifier
    ratelimiter: RateLimiter
    engine: RoomEngine
    device_lists: DeviceListService
    e2e_keys: E2EKeysService
    accounts: AccountsService
    sync: SyncService

    def replicated(self) -> Replicated:
        return Replicated(
            self.streams, self.notifier, self.engine, self.e2e_keys, self.accounts.token_cache,
            self.sync.typing, self.sync.presence,
        )


def build_core(
    config: Config, db: Database, streams: Streams, sync_class: type[SyncService] = SyncService
) -> Core:
    signing_key = read_signing_keys(config.path(config.server.signing_key_path).read_text())[0]
    server_name = config.server.server_name
    notifier = Notifier()
    ratelimiter = RateLimiter(config.rate_limits)
    engine = RoomEngine(
        db, server_name=server_name, signing_key=signing_key,
        max_members=config.rooms.max_members, notifier=notifier, stream=streams.events,
        event_cache_max_bytes=config.caches.event_cache_max_bytes,
        recent_events_max_bytes=config.caches.recent_events_max_bytes,
    )
    device_lists = DeviceListService(db, streams.device_lists, notifier, engine)
    e2e_keys = E2EKeysService(db, server_name, device_lists, config.quotas)
    accounts = AccountsService(db, config, ratelimiter, device_lists=device_lists)
    sync = sync_class(db, config, engine, notifier, streams, e2e_keys=e2e_keys)
    return Core(streams, notifier, ratelimiter, engine, device_lists, e2e_keys, accounts, sync)


@dataclass
class Homeserver:
    """One running server process: its database, services and listeners.

    The main process (`worker` None) serves every API and writes every stream; a worker serves
    /sync on its own listener and follows the main process through `replication`.
    """

    config: Config
    worker: str | None = None
    db: Database | None = None
    embedded: EmbeddedPostgres | None = None
    replication: MainReplication | WorkerReplication | None = None
    runners: list[web.AppRunner] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    _background: list[asyncio.Task[Any]] = field(default_factory=list)
    federation: Federation | None = None
    incoming: IncomingEvents | None = None  # the room engine's path for remote events
    typing: TypingService | None = None  # its expiry timers stop before the pool closes
    accounts: AccountsService | None = None  # its password hashing threads stop with us

    async def start(self) -> None:
        if self.worker is None:
            await self._start_main()
        else:
            await self._start_worker(self.worker)
        role = "" if self.worker is None else f" (worker {self.worker})"
        log.info("Moot %s is up%s: %s", self.config.server.server_name, role, self.ports)

    async def _start_main(self) -> None:
        config = self.config
        db, self.embedded = await open_database(config)
        self.db = db
        async with db.connection() as conn:
            streams = await load_streams(conn)
        core = build_core(config, db, streams)
        self.typing = core.sync.typing
        engine, sync, accounts = core.engine, core.sync, core.accounts
        censored = await db.transaction(
            lambda conn: censor_current_state(conn, engine), name="censor_current_state"
        )
        if censored:
            log.info("censored %d redacted state events stored uncensored", censored)
        self.accounts = accounts
        server_name = config.server.server_name
        rooms = RoomsService(db, config, engine, accounts, core.ratelimiter)
        self.incoming = IncomingEvents(engine)
        self._background.append(asyncio.create_task(sync.presence.run_idle_sweeper()))
        push = PushService(db, engine, sync.account_data, server_name, sync.unread)
        engine.observers.append(push)
        if config.workers and config.database.url is not None:
            await self._replicate(MainReplication(config.database.url, core.replicated()))

        client = self._client_app(core)
        client[ROOMS] = rooms
        uia = UserInteractiveAuth(db, accounts)
        client[CROSS_SIGNING] = cross_signing = CrossSigningService(db, core.device_lists, uia)
        client[DEVICES] = DevicesService(db, accounts, uia, core.device_lists)
        client[ACCOUNT_MANAGEMENT] = AccountManagementService(db, accounts, uia, engine)
        client[REGISTRATION] = RegistrationService(db, accounts, uia)
        client[TO_DEVICE] = sync.to_device
        client[KEY_BACKUP] = KeyBackupService(db, config.quotas)
        client[DIRECTORY] = directory = DirectoryService(db, engine)
        client[SEARCH] = SearchService(db, engine)
        client[TAGS] = TagsService(sync.account_data)
        client[MEDIA] = MediaService(db, config, core.ratelimiter)
        client[PUSH] = push
        client.add_routes(client_routes())
        listeners = config.listeners
        await self._listen("client", client, listeners.client.host, listeners.client.port)

        federation = web.Application(
            client_max_size=config.limits.max_request_body_bytes, middlewares=[matrix_middleware],
        )
        self.federation = build_federation(
            server_name, engine.signing_key, config.federation, db, accounts,
            aliases=rooms, directory=directory, e2e_keys=core.e2e_keys, incoming=self.incoming,
        )
        if listeners.federation.port is not None:
            # Only a server that peers can reach (and fetch keys from) asks them anything.
            remote = self.federation.remote_queries
            core.e2e_keys.remote = accounts.remote = rooms.remote = remote
            limits = RemoteServerLimits(
                server_name, config.federation, shared_servers=self._shared_servers(engine)
            )
            core.e2e_keys.server_limits = sync.to_device.server_limits = limits
            rooms.server_limits = limits
            rooms.remote_rooms = self.federation.joins
            rooms.reads.history = self.federation.backfiller
            self._plug_edus(core, cross_signing)
        # Stopped by `federation.close()` in `stop`, before the pool closes.
        engine.observers.append(self.federation.sender)
        await self.federation.sender.start()
        self.federation.install(federation, config.limits.max_request_body_bytes)
        federation[FEDERATION_OPENID] = accounts.openid
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
        if await self._serve_metrics(listeners.metrics):
            self._background.append(asyncio.create_task(self._refresh_gauges()))

    @staticmethod
    def _shared_servers(engine: RoomEngine) -> Callable[[str], Awaitable[set[str]]]:
        """The servers of the users sharing a joined room with a user (free of the caps on
        other servers a user makes us contact)."""
        async def shared(user_id: str) -> set[str]:
            users = await engine.db.run(lambda conn: users_sharing_room(engine, conn, user_id))
            return servers_of(users)

        return shared

    def _plug_edus(self, core: Core, cross_signing: CrossSigningService) -> None:
        """EDUs both ways: local users' go out through the federation sender, peers' come in
        through the transaction handler; both reach the same services."""
        assert self.federation is not None
        fed, sync, server_name = self.federation, core.sync, self.config.server.server_name
        edus = OutboundEdus(core.engine.db, core.engine, server_name, fed.sender)
        sync.typing.edus = sync.receipts.edus = sync.presence.edus = edus
        sync.to_device.edus = cross_signing.edus = edus
        core.device_lists.publisher = DeviceListUpdates(core.e2e_keys, edus)
        InboundEdus(
            server_name, core.engine, fed.pdus, fed.client, typing=sync.typing,
            receipts=sync.receipts, presence=sync.presence, to_device=sync.to_device,
            device_lists=core.device_lists, cross_signing=cross_signing,
        ).register(fed.transactions.edu_handlers)

    async def _start_worker(self, name: str) -> None:
        """/sync only, reading what the main process writes (see `services/replication.py`)."""
        config = self.config
        settings = config.worker(name)
        assert config.database.url is not None  # checked by `config.worker`
        db, self.embedded = await open_database(config, run_migrations=False)
        self.db = db
        core = build_core(config, db, follower_streams(), WorkerSyncService)
        self.typing = core.sync.typing
        self.accounts = core.accounts
        # Only the process that persists events fills the recent-events cache and keeps unread
        # counts current: here, every timeline and count is read from the database.
        core.engine.recent = RecentEvents(
            known_since=NEVER, max_bytes=config.caches.recent_events_max_bytes
        )
        core.sync.unread.live = False
        replication = WorkerReplication(config.database.url, core.replicated(), db)
        assert isinstance(core.sync, WorkerSyncService)
        core.sync.replication = replication
        await self._replicate(replication)  # serves nothing before it knows the positions

        client = self._client_app(core)
        client.add_routes(worker_routes())
        await self._listen("client", client, settings.client.host, settings.client.port)
        await self._serve_metrics(settings.metrics)

    def _client_app(self, core: Core) -> web.Application:
        """The Client-Server application with what the /sync route needs."""
        client = web.Application(
            client_max_size=self.config.limits.max_request_body_bytes,
            middlewares=[matrix_middleware],
        )
        client[CONFIG] = self.config
        client[ACCOUNTS] = core.accounts
        client[SYNC] = core.sync
        client[RATELIMITER] = core.ratelimiter
        client[E2E_KEYS] = core.e2e_keys
        return client

    async def _replicate(self, replication: MainReplication | WorkerReplication) -> None:
        await replication.start()
        self.replication = replication

    async def _serve_metrics(self, listener: ListenerConfig) -> bool:
        if listener.port is None:
            return False
        metrics_app = web.Application()
        metrics_app.router.add_get("/metrics", _serve_metrics)
        await self._listen("metrics", metrics_app, listener.host, listener.port)
        return True

    async def _listen(
        self, name: str, app: web.Application, host: str, port: int | None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        if port is None:
            return
        limits = self.config.limits
        runner = GuardedRunner(
            app, name, ListenerLimits(
                limits.header_timeout_s, limits.request_timeout_s,
                limits.min_body_bytes_per_s, limits.max_connections,
            ), access_log=None, shutdown_timeout=10.0,
        )
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
        if self.typing is not None:
            await self.typing.close()
        if self.federation is not None:
            await self.federation.close()
            self.federation = None
        if self.replication is not None:
            await self.replication.close()
            self.replication = None
        if self.accounts is not None:
            self.accounts.close()
        if self.db is not None:
            await self.db.close()
        if self.embedded is not None:
            await self.embedded.stop()
        log.info("Moot stopped")


async def _serve_metrics(request: web.Request) -> web.Response:
    """The exposition off the event loop: it formats every sample of every label set, which
    takes a tenth of a second and more once many destinations carry labels."""
    body = await asyncio.to_thread(generate_latest)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
