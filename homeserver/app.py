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
from federation.stack import Federation, OutboundFederation, build_federation, build_outbound
from federation.transactions import EduHandler
from homeserver import metrics
from homeserver.api import client_routes, worker_routes
from homeserver.api.client_address import TRUSTED_PROXIES
from homeserver.api.context import (
    ACCOUNT_MANAGEMENT,
    ACCOUNTS,
    ADMIN_USERS,
    APPSERVICE_QUERIES,
    APPSERVICES,
    CONFIG,
    CROSS_SIGNING,
    DATABASE,
    DESTINATIONS,
    DEVICES,
    DIRECTORY,
    E2E_KEYS,
    HISTORY_PURGES,
    KEY_BACKUP,
    MEDIA,
    MEDIA_ADMIN,
    PUSH,
    RATELIMITER,
    REGISTRATION,
    REGISTRATION_TOKENS,
    REPORTS,
    ROOM_ADMIN,
    ROOM_SHUTDOWN,
    ROOMS,
    SEARCH,
    SERVER_NOTICES,
    SHARED_SECRET_REGISTRATION,
    SLIDING_SYNC,
    SPACES,
    STATISTICS,
    SYNC,
    TAGS,
    THIRD_PARTY,
    TIMESTAMPS,
    TO_DEVICE,
    TURN,
    UPGRADES,
    URL_PREVIEWS,
)
from homeserver.api.http import matrix_middleware, precreate_route_series
from homeserver.config import Config, ListenerConfig
from homeserver.listeners import GuardedRunner, ListenerLimits
from homeserver.protocol.addresses import AddressPolicy
from homeserver.protocol.backoff import Backoff
from homeserver.protocol.signing import read_signing_keys
from homeserver.services.account_data import AccountDataService
from homeserver.services.account_management import AccountManagementService
from homeserver.services.accounts import AccountsService
from homeserver.services.admin_users import AdminUsersService
from homeserver.services.appservice_client import AppServiceClient
from homeserver.services.appservice_ephemeral import AppServiceEphemeral
from homeserver.services.appservice_interest import AppServiceInterest
from homeserver.services.appservice_queries import AppServiceQueries
from homeserver.services.appservice_sender import AppServiceSender
from homeserver.services.appservices import AppServices, load_appservices
from homeserver.services.censoring import censor_current_state
from homeserver.services.client_ips import ClientIpSweep
from homeserver.services.clock import Clock, SystemClock
from homeserver.services.cross_signing import CrossSigningService
from homeserver.services.destinations import FederationDestinations
from homeserver.services.device_list_updates import DeviceListUpdates
from homeserver.services.device_lists import DeviceListService
from homeserver.services.devices import DevicesService
from homeserver.services.directory import DirectoryService
from homeserver.services.e2e_keys import E2EKeysService
from homeserver.services.ephemeral import ReceiptsService, TypingService
from homeserver.services.filters import FiltersService
from homeserver.services.guest_access import GuestEviction
from homeserver.services.history_purge import HistoryPurges
from homeserver.services.key_backup import KeyBackupService
from homeserver.services.loop_lag import measure_loop_lag
from homeserver.services.media import MediaService
from homeserver.services.media_admin import MediaAdmin
from homeserver.services.media_retention import MediaRetention
from homeserver.services.notifier import Notifier
from homeserver.services.outbound_edus import OutboundEdus, servers_of, users_sharing_room
from homeserver.services.outward import NO_FEDERATION, Outward
from homeserver.services.presence import PresenceService
from homeserver.services.profile_propagation import ProfilePropagation
from homeserver.services.push import PushService
from homeserver.services.push_gateway_client import PushGatewayClient
from homeserver.services.push_sender import PushSender
from homeserver.services.push_wakeups import PushAnnouncer, PushWakeups
from homeserver.services.ratelimit import RateLimiter
from homeserver.services.redaction_sweep import RedactionSweep
from homeserver.services.registration import RegistrationService
from homeserver.services.registration_tokens import RegistrationTokens
from homeserver.services.remote_server_limits import RemoteServerLimits
from homeserver.services.replication import (
    MainReplication,
    Replicated,
    WorkerReplication,
    WorkerSyncService,
)
from homeserver.services.reports import ReportsService
from homeserver.services.retention_sweeps import RetentionSweeps, Sweep
from homeserver.services.room_admin import RoomAdmin
from homeserver.services.room_operations import RoomsService
from homeserver.services.room_retention import RoomRetention
from homeserver.services.room_shutdown import RoomShutdown
from homeserver.services.room_upgrades import RoomUpgrades, UserSettingsCarrier
from homeserver.services.rooms.cache import RoomCache
from homeserver.services.rooms.cluster import RoomCluster, build_room_cluster
from homeserver.services.rooms.current_state import CurrentStateCache
from homeserver.services.rooms.recent import RecentEvents
from homeserver.services.rooms.remote import RemoteEvents
from homeserver.services.rooms.retention import retention_limits
from homeserver.services.rooms.view import RoomView
from homeserver.services.search import SearchService
from homeserver.services.server_notices import ServerNotices
from homeserver.services.shared_secret import SharedSecretRegistration
from homeserver.services.sliding_sync import CatchUp, SlidingSyncService, already_current
from homeserver.services.sliding_sync.connections import Connections
from homeserver.services.sliding_sync.extensions import SlidingSyncExtensions
from homeserver.services.space_hierarchy import SpaceHierarchy
from homeserver.services.statistics import Statistics
from homeserver.services.streams import Streams, follower_streams, load_streams
from homeserver.services.sync import SyncParts, SyncService
from homeserver.services.tags import TagsService
from homeserver.services.third_party import ThirdPartyLookups
from homeserver.services.timestamps import JumpToDate
from homeserver.services.to_device import ToDeviceService
from homeserver.services.uia import UserInteractiveAuth
from homeserver.services.unread_counts import UnreadCounts
from homeserver.services.url_previews import UrlPreviews
from homeserver.services.voip import TurnServers
from storage import stats
from storage.database import Database
from storage.embedded import EmbeddedPostgres
from storage.migrations import check_schema, migrate

log = logging.getLogger(__name__)

GAUGE_REFRESH_S = 15.0
# Retries of a failed transaction to an application service: a second, doubling to half a
# minute, so that one back from an outage of any length gets its backlog within about 30 s
# (one that stays down costs two requests a minute).
APPSERVICE_BACKOFF = Backoff(base_s=1.0, max_s=30.0)
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
    rooms: RoomCluster
    device_lists: DeviceListService
    e2e_keys: E2EKeysService
    accounts: AccountsService
    sync_parts: SyncParts
    appservices: AppServices

    def replicated(self) -> Replicated:
        return Replicated(
            self.streams, self.notifier, self.rooms.cache, self.e2e_keys, self.accounts.token_cache,
            self.sync_parts.typing, self.sync_parts.presence,
        )


def build_rooms(
    config: Config, db: Database, streams: Streams, notifier: Notifier, clock: Clock
) -> RoomCluster:
    signing_key = read_signing_keys(config.path(config.server.signing_key_path).read_text())[0]
    return build_room_cluster(
        db, server_name=config.server.server_name, signing_key=signing_key,
        max_members=config.rooms.max_members, notifier=notifier, stream=streams.events,
        event_cache_max_bytes=config.caches.event_cache_max_bytes,
        recent_events_max_bytes=config.caches.recent_events_max_bytes, clock=clock,
        retention=retention_limits(config.retention),
    )


def build_core(
    config: Config, db: Database, streams: Streams, notifier: Notifier, rooms: RoomCluster,
    outward: Outward, clock: Clock, appservices: AppServices, *, follower: bool = False,
) -> Core:
    """``follower``: a worker, which reads what the main process writes (unread counts from
    the database rather than kept current in memory)."""
    server_name = config.server.server_name
    ratelimiter = RateLimiter(config.rate_limits, clock)
    device_lists = DeviceListService(
        db, streams.device_lists, notifier, rooms.cache, DeviceListUpdates(db, outward.edus)
    )
    e2e_keys = E2EKeysService(
        db, server_name, device_lists, config.quotas, clock, remote=outward.queries,
        server_limits=outward.server_limits,
    )
    accounts = AccountsService(
        db, config, ratelimiter, clock, device_lists=device_lists, remote=outward.queries,
        appservices=appservices,
    )
    accounts.erased_changed.append(rooms.cache.erased_changed)
    sync_parts = build_sync_parts(
        config, db, streams, notifier, rooms.cache, outward, clock, follower=follower
    )
    return Core(
        streams, notifier, ratelimiter, rooms, device_lists, e2e_keys, accounts, sync_parts,
        appservices,
    )


def build_sync_parts(
    config: Config, db: Database, streams: Streams, notifier: Notifier, rooms: RoomView,
    outward: Outward, clock: Clock, *, follower: bool,
) -> SyncParts:
    edus = outward.edus
    account_data = AccountDataService(db, streams.account_data, notifier, config.quotas)
    receipts = ReceiptsService(
        db, rooms, streams.receipts, notifier, account_data, edus, clock
    )
    unread = UnreadCounts(live=not follower)
    receipts.on_read.append(unread.read_moved)
    return SyncParts(
        filters=FiltersService(db, config.quotas),
        account_data=account_data,
        typing=TypingService(db, rooms, streams.typing, notifier, edus),
        receipts=receipts,
        to_device=ToDeviceService(
            db, config.server.server_name, streams.to_device, notifier, clock, edus=edus,
            server_limits=outward.server_limits,
        ),
        presence=PresenceService(db, streams.presence, notifier, config.presence, edus, clock),
        unread=unread,
    )


def build_push_sender(
    config: Config, db: Database, rooms: RoomCache, unread: UnreadCounts, clock: Clock
) -> PushSender:
    """The push sender, with its gateway client under `push.allow_private_addresses`."""
    allow_private = config.push.allow_private_addresses
    if allow_private:
        log.warning(
            "push.allow_private_addresses is on: push gateways may be on loopback, private "
            "and link-local addresses"
        )
    client = PushGatewayClient(AddressPolicy(allow_private=allow_private))
    return PushSender(
        db, client, rooms, unread, rooms.current_state, config.server.server_name, clock
    )


def federation_outward(
    config: Config, db: Database, rooms: RoomView, outbound: OutboundFederation, clock: Clock
) -> Outward:
    """What the services reach other servers through when this server federates."""
    server_name = config.server.server_name
    return Outward(
        queries=outbound.remote_queries, rooms=outbound.joins, history=outbound.backfiller,
        server_limits=RemoteServerLimits(
            server_name, config.federation, clock=clock,
            shared_servers=_shared_servers(db, rooms),
        ),
        edus=OutboundEdus(db, rooms, server_name, outbound.sender),
        room_info=outbound.room_info, media=outbound.media,
    )


def _shared_servers(db: Database, rooms: RoomView) -> Callable[[str], Awaitable[set[str]]]:
    """The servers of the users sharing a joined room with a user (free of the caps on
    other servers a user makes us contact)."""
    async def shared(user_id: str) -> set[str]:
        users = await db.run(lambda conn: users_sharing_room(rooms, conn, user_id))
        return servers_of(users)

    return shared


@dataclass
class Homeserver:
    """One running server process: its database, services and listeners.

    The main process (`worker` None) serves every API and writes every stream; a worker serves
    /sync on its own listener and follows the main process through `replication`.
    """

    config: Config
    worker: str | None = None
    # The one clock every service and federation part reads time from.
    clock: Clock = field(default_factory=SystemClock)
    db: Database | None = None
    embedded: EmbeddedPostgres | None = None
    replication: MainReplication | WorkerReplication | None = None
    runners: list[web.AppRunner] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    _background: list[asyncio.Task[Any]] = field(default_factory=list)
    federation: Federation | None = None
    incoming: RemoteEvents | None = None  # the room cluster's path for remote events
    typing: TypingService | None = None  # its expiry timers stop before the pool closes
    accounts: AccountsService | None = None  # its password hashing threads stop with us
    history_purges: HistoryPurges | None = None  # purges in flight stop before the pool closes
    retention_sweeps: RetentionSweeps | None = None  # stopped before the pool closes
    # The room retention sweep (`sweep(now_ms)`), for the retention scheduler and tests.
    room_retention: RoomRetention | None = None
    url_previews: UrlPreviews | None = None  # its HTTP client closes with us
    push_sender: PushSender | None = None  # stopped before the pool closes
    push_wakeups: PushWakeups | None = None  # the push worker's LISTEN
    room_shutdown: RoomShutdown | None = None  # its running room deletions stop with us
    appservices: AppServices = field(default_factory=AppServices)
    # Stopped before the pool closes; tests reach it (its backoff, its client's timeouts).
    appservice_sender: AppServiceSender | None = None

    async def start(self) -> None:
        # Before anything else: a bad registration file stops start-up at once.
        self.appservices = load_appservices(self.config)
        self._background.append(asyncio.create_task(measure_loop_lag()))
        if self.worker is None:
            await self._start_main()
        else:
            await self._start_worker(self.worker)
        role = "" if self.worker is None else f" (worker {self.worker})"
        log.info("Moot %s is up%s: %s", self.config.server.server_name, role, self.ports)

    async def _start_main(self) -> None:
        config, clock = self.config, self.clock
        db, self.embedded = await open_database(config)
        self.db = db
        async with db.connection() as conn:
            streams = await load_streams(conn, clock)
        server_name, listeners = config.server.server_name, config.listeners
        notifier = Notifier()
        cluster = build_rooms(config, db, streams, notifier, clock)
        self.incoming = cluster.remote
        outbound = build_outbound(
            server_name, cluster.local.signing_key, config.federation, db, cluster, clock
        )
        # Only a server that peers can reach (and fetch keys from) asks them anything.
        federates = listeners.federation.port is not None
        outward = (
            federation_outward(config, db, cluster.cache, outbound, clock) if federates
            else NO_FEDERATION
        )
        core = build_core(config, db, streams, notifier, cluster, outward, clock, self.appservices)
        parts = core.sync_parts
        self.typing = parts.typing
        accounts = core.accounts
        sync = SyncService(
            db, config, cluster.cache, notifier, streams, clock, e2e_keys=core.e2e_keys,
            parts=parts,
        )
        censored = await db.transaction(
            lambda conn: censor_current_state(conn, cluster.cache), name="censor_current_state"
        )
        if censored:
            log.info("censored %d redacted state events stored uncensored", censored)
        self.accounts = accounts
        rooms = RoomsService(
            db, config, cluster.cache, cluster.local, accounts, core.ratelimiter, outward, clock
        )
        self._background.append(asyncio.create_task(parts.presence.run_idle_sweeper()))
        propagation = ProfilePropagation(db, cluster.local, clock)
        accounts.profiles.member_fields_changed.append(propagation.wake)
        self._background.append(asyncio.create_task(propagation.run()))
        eviction = GuestEviction(db, cluster.local)
        cluster.writes.observers.append(eviction)
        self._background.append(asyncio.create_task(eviction.run()))
        self.push_sender = push_sender = build_push_sender(
            config, db, cluster.cache, parts.unread, clock
        )
        parts.receipts.on_read.append(push_sender.read_moved)
        push = PushService(
            db, cluster.cache, parts.account_data, server_name, parts.unread, clock,
            sender=push_sender,
        )
        cluster.writes.observers.append(push)
        if config.workers and config.database.url is not None:
            replication = MainReplication(
                config.database.url, core.replicated(),
                serves_sync=any(w.client.port is not None for w in config.workers.values()),
            )
            if config.push_worker is not None:  # it delivers; this process only queues
                # A previous run may have died before announcing what it committed.
                PushAnnouncer(replication, push_sender, parts.unread).reset()
            await self._replicate(replication)
        await push_sender.start()

        client = self._client_app(core, sync, self._sliding_sync(db, core, cluster.cache))
        client[ROOMS] = rooms
        uia = UserInteractiveAuth(db, accounts, clock)
        client[CROSS_SIGNING] = cross_signing = CrossSigningService(
            db, core.device_lists, uia, outward.edus, clock
        )
        client[DEVICES] = DevicesService(db, accounts, uia, core.device_lists, clock)
        client[MEDIA] = media = MediaService(db, config, core.ratelimiter, clock, outward)
        client[ACCOUNT_MANAGEMENT] = management = AccountManagementService(
            db, accounts, uia, cluster.local, media
        )
        client[ADMIN_USERS] = AdminUsersService(db, accounts, management)
        client[SHARED_SECRET_REGISTRATION] = SharedSecretRegistration(
            accounts, config.registration.shared_secret, clock
        )
        client[REGISTRATION] = RegistrationService(
            db, accounts, uia, clock, require_token=config.registration.require_token
        )
        client[REGISTRATION_TOKENS] = RegistrationTokens(db, clock)
        client[TO_DEVICE] = parts.to_device
        client[KEY_BACKUP] = KeyBackupService(db, config.quotas)
        client[DIRECTORY] = directory = DirectoryService(
            db, cluster.cache, core.appservices, remote=outward.queries,
            server_limits=outward.server_limits, clock=clock,
        )
        client[SEARCH] = SearchService(db, cluster.cache, core.streams.events, clock)
        client[TAGS] = tags = TagsService(parts.account_data)
        client[SERVER_NOTICES] = notices = ServerNotices(db, config, accounts, rooms, tags)
        rooms.leave_checks.append(notices.check_leave)
        client[MEDIA_ADMIN] = media_admin = MediaAdmin(db, media)
        client[URL_PREVIEWS] = self.url_previews = UrlPreviews(
            db, config, media, core.ratelimiter, clock
        )
        client[PUSH] = push
        client[TURN] = TurnServers(config.voip, clock)
        client[SPACES] = spaces = SpaceHierarchy(
            db, cluster.cache, server_name, outward.room_info, clock
        )
        carrier = UserSettingsCarrier(db, cluster.cache, tags, parts.account_data, push)
        rooms.on_join.append(carrier.joined)
        client[UPGRADES] = RoomUpgrades(
            db, cluster.cache, cluster.local, rooms.reads, rooms.creation, carrier
        )
        client[TIMESTAMPS] = JumpToDate(
            db, cluster.cache, rooms.reads, outward.room_info, server_name
        )
        client[REPORTS] = ReportsService(db, rooms.reads, core.ratelimiter, clock)
        client[HISTORY_PURGES] = self.history_purges = HistoryPurges(
            db, cluster.writes, cluster.cache, parts.unread, server_name=server_name, clock=clock,
        )
        self.room_retention = RoomRetention(
            db, cluster.cache.retention, self.history_purges, clock
        )
        client[ROOM_ADMIN] = RoomAdmin(db, cluster.cache, rooms, clock)
        client[ROOM_SHUTDOWN] = self.room_shutdown = RoomShutdown(db, cluster.cache, rooms, clock)
        client[DESTINATIONS] = FederationDestinations(db, outbound.sender)
        client[STATISTICS] = Statistics(db)
        queries = await self._start_appservices(db, core, rooms, client[UPGRADES])
        client[APPSERVICE_QUERIES] = queries
        client[THIRD_PARTY] = ThirdPartyLookups(core.appservices, queries.client)
        client.add_routes(client_routes())
        await self._listen("client", client, listeners.client.host, listeners.client.port)

        federation = web.Application(
            client_max_size=config.limits.max_request_body_bytes, middlewares=[matrix_middleware],
        )
        self.federation = build_federation(
            outbound, server_name, cluster.local.signing_key, db, accounts.profiles, aliases=rooms,
            directory=directory, e2e_keys=core.e2e_keys,
            edu_handlers=self._edu_handlers(db, core, outbound, cross_signing) if federates else {},
            clock=clock, spaces=spaces, media=media,
        )
        # Stopped by `federation.close()` in `stop`, before the pool closes.
        cluster.writes.observers.append(outbound.sender)
        await outbound.sender.start()
        self.federation.install(federation, config.limits.max_request_body_bytes)
        # nginx may proxy federation too (on 443, delegated): the access log then names the
        # peer server's address rather than the proxy's.
        federation[TRUSTED_PROXIES] = config.http.trusted_proxies
        federation[FEDERATION_OPENID] = accounts.openid
        if federates:
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
        self.retention_sweeps = RetentionSweeps(
            self._retention_sweeps(db, cluster.cache, media, media_admin),
            interval_ms=config.retention.purge_interval_ms, clock=clock,
        )
        self.retention_sweeps.start()

    def _retention_sweeps(
        self, db: Database, cache: RoomCache, media: MediaService, media_admin: MediaAdmin
    ) -> list[Sweep]:
        """What the retention scheduler runs, in this order. Room retention is listed only
        when `retention.enabled`; the others run whether or not it is."""
        config, rooms = self.config, self.room_retention
        return [
            *([Sweep("rooms", rooms.sweep)] if config.retention.enabled and rooms else []),
            Sweep("redactions", RedactionSweep(db, cache).sweep),
            Sweep("media", MediaRetention(
                db, media, media_admin, config.media.retention.local_lifetime_ms
            ).sweep),
            Sweep("client_ips", ClientIpSweep(db, config.privacy.client_ip_retention_ms).sweep),
        ]

    async def _start_appservices(
        self, db: Database, core: Core, rooms: RoomsService, upgrades: RoomUpgrades
    ) -> AppServiceQueries:
        """Delivery to the registered application services: transactions of the events and
        ephemeral data that interest them, and the questions about users and aliases."""
        registrations, cache, parts = list(self.appservices), core.rooms.cache, core.sync_parts
        client = AppServiceClient()
        interest = AppServiceInterest(registrations)
        sender = AppServiceSender(
            db, cache, registrations, interest, client, clock=self.clock,
            backoff=APPSERVICE_BACKOFF,
        )
        self.appservice_sender = sender
        core.rooms.writes.observers.append(sender)
        cache.on_members_resolved.append(interest.forget_room)
        rooms.on_aliases_changed.append(interest.forget_room)
        upgrades.on_aliases_changed.append(interest.forget_room)
        queries = AppServiceQueries(registrations, client, sender.appservice_is_back)
        if registrations:
            core.accounts.profiles.ask_unknown_user = queries.user_exists
            rooms.ask_unknown_alias = queries.alias_exists
        ephemeral = AppServiceEphemeral(db, cache, interest, sender, parts.presence)
        if ephemeral.active:
            parts.typing.on_change.append(ephemeral.typing_changed)
            parts.receipts.on_receipt.append(ephemeral.receipt_stored)
            parts.presence.on_change.append(ephemeral.presence_changed)
            self._background.append(asyncio.create_task(ephemeral.run()))
        await sender.start()
        return queries

    def _edu_handlers(
        self, db: Database, core: Core, outbound: OutboundFederation,
        cross_signing: CrossSigningService,
    ) -> dict[str, EduHandler]:
        """Peers' EDUs, for the transaction handler: they reach the same services whose local
        users' EDUs go out through the sender."""
        parts = core.sync_parts
        return InboundEdus(
            self.config.server.server_name, db, core.rooms.cache, outbound.pdus, outbound.client,
            typing=parts.typing, receipts=parts.receipts, presence=parts.presence,
            to_device=parts.to_device, device_lists=core.device_lists,
            cross_signing=cross_signing,
        ).handlers()

    async def _start_worker(self, name: str) -> None:
        """/sync only (if it has a client listener), reading what the main process writes (see
        `services/replication.py`); the push worker also delivers pushes."""
        config = self.config
        settings = config.worker(name)
        assert config.database.url is not None  # checked by `config.worker`
        db, self.embedded = await open_database(config, run_migrations=False)
        self.db = db
        streams = follower_streams()
        notifier = Notifier()
        cluster = build_rooms(config, db, streams, notifier, self.clock)
        core = build_core(
            config, db, streams, notifier, cluster, NO_FEDERATION, self.clock, self.appservices,
            follower=True,
        )
        self.typing = core.sync_parts.typing
        self.accounts = core.accounts
        # Only the process that persists events fills the recent-events cache, keeps rooms'
        # current state and unread counts current: here, every timeline, state entry and count
        # is read from the database.
        cluster.cache.recent = RecentEvents(
            known_since=NEVER, max_bytes=config.caches.recent_events_max_bytes
        )
        cluster.cache.current_state = CurrentStateCache(max_bytes=0)
        replication = WorkerReplication(config.database.url, core.replicated(), db, self.clock)
        sync = WorkerSyncService(
            db, config, cluster.cache, notifier, streams, self.clock, e2e_keys=core.e2e_keys,
            parts=core.sync_parts, replication=replication,
        )
        await self._replicate(replication)  # serves nothing before it knows the positions
        if settings.push:
            # Counts of its own, kept current by the main process (`push_wakeups.py`).
            self.push_sender = sender = build_push_sender(
                config, db, cluster.cache, UnreadCounts(), self.clock
            )
            self.push_wakeups = PushWakeups(config.database.url, sender)
            await self.push_wakeups.start()  # before the sender's first read of the queue
            await sender.start()

        sliding = self._sliding_sync(
            db, core, cluster.cache, catch_up=replication.catch_up
        )
        client = self._client_app(core, sync, sliding)
        client.add_routes(worker_routes())
        await self._listen("client", client, settings.client.host, settings.client.port)
        await self._serve_metrics(settings.metrics)

    def _sliding_sync(
        self, db: Database, core: Core, rooms: RoomView, catch_up: CatchUp = already_current
    ) -> SlidingSyncService:
        config, parts = self.config, core.sync_parts
        connections = Connections(
            db, self.clock, per_device=config.limits.sliding_sync_connections_per_device,
            shared=bool(config.workers),
        )
        extensions = SlidingSyncExtensions(
            to_device=parts.to_device, e2e_keys=core.e2e_keys, account_data=parts.account_data,
            receipts=parts.receipts, typing=parts.typing,
        )
        return SlidingSyncService(
            db, config, rooms, core.notifier, core.streams, self.clock,
            connections=connections, extensions=extensions, presence=parts.presence,
            unread=parts.unread, receipts=parts.receipts, catch_up=catch_up,
        )

    def _client_app(
        self, core: Core, sync: SyncService, sliding_sync: SlidingSyncService
    ) -> web.Application:
        """The Client-Server application with what the /sync routes need."""
        client = web.Application(
            client_max_size=self.config.limits.max_request_body_bytes,
            middlewares=[matrix_middleware],
        )
        client[CONFIG] = self.config
        client[TRUSTED_PROXIES] = self.config.http.trusted_proxies
        assert self.db is not None
        client[DATABASE] = self.db
        client[ACCOUNTS] = core.accounts
        client[SYNC] = sync
        client[SLIDING_SYNC] = sliding_sync
        client[RATELIMITER] = core.ratelimiter
        client[E2E_KEYS] = core.e2e_keys
        client[APPSERVICES] = core.appservices
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
        precreate_route_series(app)
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
                metrics.ROOM_FORWARD_EXTREMITIES_MAX.set(counts["forward_extremities_max"])
                pool = self.db.pool_stats()
                metrics.DB_POOL_SIZE.set(pool["size"])
                metrics.DB_POOL_IN_USE.set(pool["in_use"])
                if self.push_sender is not None:
                    await self.push_sender.refresh_gauges()
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
        if self.url_previews is not None:
            await self.url_previews.close()
        if self.retention_sweeps is not None:
            await self.retention_sweeps.stop()
        if self.history_purges is not None:
            await self.history_purges.stop()
        if self.push_wakeups is not None:
            await self.push_wakeups.close()
        if self.push_sender is not None:
            await self.push_sender.stop()
        if self.room_shutdown is not None:
            await self.room_shutdown.close()
        if self.appservice_sender is not None:
            await self.appservice_sender.stop()
            await self.appservice_sender.client.close()
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
