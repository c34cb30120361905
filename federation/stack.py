"""Builds the federation components from the config and hands them to `homeserver/app.py`.

`app.py` stays the composition root; this is the federation corner of it, kept here so that
the order in which the parts depend on each other (transport, discovery, client, keyring,
authenticator, notary) is written down once, beside them. It is built in two steps, which is
what keeps the services free of optional parts: `build_outbound` before the services (they are
handed what reaches other servers), `build_federation` after them (what answers other servers
reads from the services).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiohttp import web

from federation.api import federation_routes
from federation.api.context import (
    AUTHENTICATOR,
    BODY_LIMIT,
    CLOCK,
    DIRECTORY,
    E2E_KEYS,
    JOINS,
    MEDIA,
    NOTARY,
    OWN_KEYS,
    QUERIES,
    ROOM_READS,
    SPACES,
    TRANSACTIONS,
)
from federation.backfiller import Backfiller
from federation.client import FederationClient
from federation.discovery import DnsSrvResolver, HttpsWellKnownFetcher, ServerDiscovery, SrvResolver
from federation.inbound_auth import RequestAuthenticator
from federation.inbound_pdus import InboundPdus
from federation.joins import Joins
from federation.keyring import Keyring
from federation.media_fetch import FederationMedia
from federation.notary import Notary
from federation.own_keys import OwnKeys
from federation.pdu_checks import PduChecker
from federation.queries import AliasSource, FederationQueries, ProfileSource
from federation.remote_queries import FederationRemoteQueries
from federation.room_info import FederationRoomInfo
from federation.room_reads import RoomReads
from federation.sender import FederationSender
from federation.transactions import EduHandler, TransactionHandler
from federation.transport import HostResolver, Transport
from homeserver.config import FederationConfig
from homeserver.protocol.addresses import AddressPolicy
from homeserver.protocol.signing import SigningKey, key_id, verify_key_of
from homeserver.services.clock import Clock
from homeserver.services.directory import DirectoryService
from homeserver.services.e2e_keys import E2EKeysService
from homeserver.services.media import MediaService
from homeserver.services.rooms.cluster import RoomCluster
from homeserver.services.space_hierarchy import SpaceHierarchy
from storage.database import Database

log = logging.getLogger(__name__)


@dataclass
class OutboundFederation:
    """What this server asks of other servers and sends them. Built before the services,
    which are handed `remote_queries`, `joins` and `backfiller` (as their `Outward`) and whose
    EDUs leave through `sender`."""

    transport: Transport
    discovery: ServerDiscovery
    client: FederationClient
    keyring: Keyring
    sender: FederationSender
    remote_queries: FederationRemoteQueries
    pdus: InboundPdus  # checks and stores what joins, backfill and transactions bring
    joins: Joins
    backfiller: Backfiller
    room_info: FederationRoomInfo  # other servers' hierarchies and timestamp lookups
    media: FederationMedia  # other servers' media


@dataclass
class Federation:
    """One server's federation: the outbound parts, and the inbound ones, built after the
    services they answer from."""

    outbound: OutboundFederation
    clock: Clock
    authenticator: RequestAuthenticator
    own_keys: OwnKeys
    notary: Notary
    queries: FederationQueries
    directory: DirectoryService
    e2e_keys: E2EKeysService
    transactions: TransactionHandler
    room_reads: RoomReads
    spaces: SpaceHierarchy
    media: MediaService

    def install(self, app: web.Application, body_limit: int) -> None:
        """Mount the Server-Server routes and what they call on the federation listener;
        authenticated routes read bodies up to ``body_limit`` (`PUT /send`: a transaction)."""
        app[BODY_LIMIT] = body_limit
        app[CLOCK] = self.clock
        app[OWN_KEYS] = self.own_keys
        app[NOTARY] = self.notary
        app[AUTHENTICATOR] = self.authenticator
        app[QUERIES] = self.queries
        app[DIRECTORY] = self.directory
        app[E2E_KEYS] = self.e2e_keys
        app[TRANSACTIONS] = self.transactions
        app[JOINS] = self.outbound.joins
        app[ROOM_READS] = self.room_reads
        app[SPACES] = self.spaces
        app[MEDIA] = self.media
        app.add_routes(federation_routes())

    async def close(self) -> None:
        """Stop the sender (its queue stays in the database), then close the connections."""
        await self.outbound.sender.stop()
        self.authenticator.close()
        await self.outbound.transport.close()


def make_client(
    server_name: str, signing_key: SigningKey, config: FederationConfig, clock: Clock, *,
    srv_resolver: SrvResolver | None = None, host_resolver: HostResolver | None = None,
) -> FederationClient:
    """A federation client with its own transport and discovery, set up as ``config`` says."""
    transport = Transport(
        policy=AddressPolicy(allow_private=config.allow_private_addresses),
        verify_certificates=config.verify_certificates,
        connect_timeout_s=config.connect_timeout_s, request_timeout_s=config.request_timeout_s,
        resolver=host_resolver, resolve_timeout_s=config.dns_timeout_s,
    )
    discovery = ServerDiscovery(
        srv_resolver or DnsSrvResolver(), HttpsWellKnownFetcher(transport), clock
    )
    return FederationClient(server_name, signing_key, transport, discovery)


def build_outbound(
    server_name: str, signing_key: SigningKey, config: FederationConfig, db: Database,
    rooms: RoomCluster, clock: Clock,
) -> OutboundFederation:
    """Every part that reaches other servers; warns when a safety switch is off."""
    if not config.verify_certificates:
        log.warning(
            "federation.verify_certificates is off: peers' TLS certificates are NOT checked "
            "(only for servers federating on one machine, in tests)"
        )
    if config.allow_private_addresses:
        log.warning(
            "federation.allow_private_addresses is on: outbound federation may connect to "
            "loopback, private and link-local addresses"
        )
    client = make_client(server_name, signing_key, config, clock)
    keyring = Keyring(
        db, client, server_name=server_name, own_key_id=key_id(signing_key),
        own_verify_key=verify_key_of(signing_key), notaries=config.trusted_notaries,
        unknown_fetches_per_minute=config.unknown_server_key_fetches_per_minute, clock=clock,
    )
    sender = FederationSender(
        db, client, server_name, clock=clock, destination_expiry_ms=config.destination_expiry_ms,
        metrics_destinations=config.metrics_destinations,
    )
    pdus = InboundPdus(
        db, rooms.cache, rooms.remote, rooms.outliers, PduChecker(keyring), client
    )
    return OutboundFederation(
        transport=client.transport, discovery=client.discovery, client=client,
        keyring=keyring, sender=sender, remote_queries=FederationRemoteQueries(client),
        pdus=pdus, joins=Joins(db, rooms, pdus, client, server_name, signing_key, clock),
        backfiller=Backfiller(db, pdus, client, server_name),
        room_info=FederationRoomInfo(client, pdus), media=FederationMedia(client),
    )


def build_federation(
    outbound: OutboundFederation, server_name: str, signing_key: SigningKey, db: Database,
    profiles: ProfileSource, *, aliases: AliasSource, directory: DirectoryService,
    e2e_keys: E2EKeysService, edu_handlers: dict[str, EduHandler], clock: Clock,
    spaces: SpaceHierarchy, media: MediaService,
) -> Federation:
    """The inbound parts, answering from the services (built after them) and ``edu_handlers``."""
    own_keys = OwnKeys(server_name, signing_key)
    keyring, pdus = outbound.keyring, outbound.pdus
    return Federation(
        outbound=outbound, clock=clock,
        authenticator=RequestAuthenticator(
            server_name, keyring, on_peer_contact=outbound.sender.peer_is_back
        ),
        own_keys=own_keys, notary=Notary(own_keys, keyring, clock),
        queries=FederationQueries(server_name, profiles, aliases),
        directory=directory, e2e_keys=e2e_keys,
        transactions=TransactionHandler(db, pdus, edu_handlers, clock),
        room_reads=RoomReads(db, pdus.engine, server_name, pdus.server_allowed, clock),
        spaces=spaces, media=media,
    )
