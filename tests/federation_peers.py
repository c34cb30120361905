"""Several real Moot servers federating over TLS on loopback, for integration tests.

Each `Peer` has its own throwaway database, a federation listener on a port chosen before it
starts (its server name is `127.0.0.1:<port>`, so peers connect straight to it), and the
insecure federation switches on (self-signed certificates, loopback peers), as `init
--insecure-federation` writes them. `tests/conftest.py` registers this module as a plugin, so
the `peers` and `peer_http` fixtures are there for any test that names them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from federation.stack import Federation
from homeserver.app import Homeserver
from homeserver.config import load_config
from homeserver.protocol.signing import SigningKey, read_signing_keys
from tests.conftest import throwaway_database, write_test_config
from tests.federation_helpers import free_port
from tests.helpers import MatrixApi, User


@dataclass
class Peer:
    """One Moot server of a test: stoppable and restartable on the same data and database."""

    label: str
    data_dir: Path
    database_url: str
    port: int
    notaries: tuple[str, ...] = ()
    overrides: dict[str, Any] = field(default_factory=dict)
    hs: Homeserver | None = None
    config_path: Path | None = None
    # Where the federation listener really listens, when not on `port` (a relay's there).
    listen_port: int | None = None

    @property
    def name(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def federation(self) -> Federation:
        assert self.hs is not None and self.hs.federation is not None
        return self.hs.federation

    @property
    def client_url(self) -> str:
        assert self.hs is not None
        return f"http://127.0.0.1:{self.hs.ports['client']}"

    @property
    def federation_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def signing_key(self) -> SigningKey:
        assert self.config_path is not None
        return read_signing_keys((self.data_dir / "signing.key").read_text())[0]

    def api(self, http: aiohttp.ClientSession) -> MatrixApi:
        """A client of this server's client API (valid until the server restarts)."""
        return MatrixApi(self.client_url, http)

    async def start(self) -> Peer:
        if self.config_path is None:
            self.config_path = write_test_config(
                self.data_dir, self.database_url, {
                    "listeners.federation.port": self.listen_port or self.port,
                    "federation.verify_certificates": False,
                    "federation.allow_private_addresses": True,
                    "federation.trusted_notaries": list(self.notaries),
                    **self.overrides,
                }, server_name=self.name,
            )
        self.hs = Homeserver(load_config(self.config_path))
        await self.hs.start()
        return self

    async def stop(self) -> None:
        if self.hs is not None:
            await self.hs.stop()
            self.hs = None


@dataclass
class Peers:
    """The servers of one test; the `peers` fixture stops them all and drops their databases."""

    postgres_dsn: str
    tmp_path: Path
    stack: contextlib.AsyncExitStack
    all: list[Peer] = field(default_factory=list)

    async def new(self, label: str, *, port: int | None = None,
                  notaries: tuple[str, ...] = (), start: bool = True,
                  overrides: dict[str, Any] | None = None,
                  listen_port: int | None = None) -> Peer:
        """A server named after a free port; ``overrides`` are dotted config keys;
        ``listen_port``: its federation listener's, when not the port of its name."""
        url = await self.stack.enter_async_context(throwaway_database(self.postgres_dsn))
        peer = Peer(label, self.tmp_path / label, url, port or free_port(), notaries,
                    dict(overrides or {}), listen_port=listen_port)
        self.all.append(peer)
        return await peer.start() if start else peer


@contextlib.asynccontextmanager
async def peer_group(postgres_dsn: str, tmp_path: Path) -> AsyncIterator[Peers]:
    """Servers that are stopped, and whose databases are dropped, on leaving; for fixtures of
    any scope (a module can share two servers among tests that do not stop them)."""
    async with contextlib.AsyncExitStack() as stack:
        group = Peers(postgres_dsn, tmp_path, stack)
        try:
            yield group
        finally:
            for peer in reversed(group.all):
                await peer.stop()


@pytest.fixture
async def peers(postgres_dsn: str, tmp_path: Path) -> AsyncIterator[Peers]:
    async with peer_group(postgres_dsn, tmp_path) as group:
        yield group


@pytest.fixture
async def peer_http() -> AsyncIterator[aiohttp.ClientSession]:
    # Tests play a peer by hand: they trust the self-signed certificates like one would.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as session:
        yield session


async def register(peer: Peer, http: aiohttp.ClientSession, localpart: str) -> str:
    """A new user of ``peer`` whose display name says whose it is ("Alice of b")."""
    api = peer.api(http)
    user = await api.register(localpart)
    await api.ok("PUT", f"profile/{quote(user.user_id)}/displayname",
                 json={"displayname": f"{localpart.title()} of {peer.label}"}, token=user.token)
    return user.user_id


DEADLINE_S = 30.0


async def eventually(
    check: Callable[[], Awaitable[Any]], what: str, deadline_s: float = DEADLINE_S
) -> Any:
    """Poll `check` until it returns something truthy, or fail after `deadline_s`."""
    deadline = time.monotonic() + deadline_s
    while not (result := await check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return result


async def joined_members(api: MatrixApi, user: User, room_id: str) -> set[str]:
    """The room's joined members as `user`'s server sees them (empty when it may not look)."""
    status, body = await api.request(
        "GET", f"rooms/{quote(room_id)}/joined_members", token=user.token
    )
    return set(body["joined"]) if status == 200 else set()


async def join_via(api: MatrixApi, user: User, room_id: str, server: Peer) -> None:
    """`user` joins a room of another server, through `server`."""
    await api.ok(
        "POST", f"join/{quote(room_id)}", token=user.token, json={},
        params={"via": server.name},
    )


async def join_and_wait(
    guest_api: MatrixApi, guest: User, room_id: str, host: Peer, host_api: MatrixApi,
    host_user: User,
) -> None:
    """`guest` joins `host`'s room, and the host's server has seen the join."""
    await join_via(guest_api, guest, room_id, host)

    async def seen() -> bool:
        return guest.user_id in await joined_members(host_api, host_user, room_id)

    await eventually(seen, f"{guest.user_id}'s join on {host.name}")


@dataclass
class TwoServerRoom:
    """Alice of `a`, Bob of `b`, and a room Alice made on `a` that Bob was invited to (or
    joined, as the helper making it says)."""

    a: Peer
    b: Peer
    api_a: MatrixApi
    api_b: MatrixApi
    alice: User
    bob: User
    room_id: str


async def remote_invite(peers: Peers, http: aiohttp.ClientSession) -> TwoServerRoom:
    """Two servers, and an invite across them that Bob's client has seen in /sync."""
    a, b = await peers.new("a"), await peers.new("b")
    api_a, api_b = a.api(http), b.api(http)
    alice, bob = await api_a.register("alice"), await api_b.register("bob")
    room_id = await api_a.create_room(alice, preset="private_chat")
    await api_a.invite(alice, room_id, bob)

    async def invited() -> bool:
        return room_id in (await api_b.sync(bob)).get("rooms", {}).get("invite", {})

    await eventually(invited, "Bob's invite")
    return TwoServerRoom(a, b, api_a, api_b, alice, bob, room_id)
