"""Security audit probes: server-side request forgery through server names a user chooses.

With `federation.allow_private_addresses` off (the default; `init --insecure-federation` turns
it on), no request a user makes may open a connection to a loopback, private, link-local or
otherwise non-public address, however the address is spelt: as a literal in its many
encodings (`127.1`, `2130706433`, `0x7f000001`, `0177.0.0.1`, `[::ffff:127.0.0.1]`, ...), or
as a name that resolves there (`localhost`, this machine's own host name).

A TCP listener on 127.0.0.1 (and ::1 where the machine has IPv6) counts every connection; each
probe names it, with its port, through an endpoint where a user picks the server: remote media
downloads and thumbnails, profile, device key queries and claims, alias lookups, joins,
invites, the public room list of another server, to-device messages and pushers. The listener
must see no connection at all, and no probe may answer a 500. Addresses nothing on this machine
listens on (10.0.0.1, 169.254.169.254, ...) are refused by the same check on the resolved
address, before any connection is opened; since no connection there could be observed, those
probes (and the loopback ones) assert that refusal, counted by the metric
`moot_federation_addresses_refused_total`.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from storage import outbox
from storage.database import Database
from tests.audit_helpers import module_server
from tests.federation_peers import eventually
from tests.helpers import MatrixApi, User


@dataclass
class Listener:
    """Counts TCP connections on one port of the loopback addresses."""

    port: int = 0
    connections: list[str] = field(default_factory=list)
    servers: list[asyncio.Server] = field(default_factory=list)

    async def start(self) -> None:
        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections.append(str(writer.get_extra_info("peername")))
            writer.close()

        first = await asyncio.start_server(accepted, "127.0.0.1", 0)
        self.port = first.sockets[0].getsockname()[1]
        self.servers.append(first)
        try:
            self.servers.append(await asyncio.start_server(accepted, "::1", self.port))
        except OSError:
            pass  # no IPv6 loopback here: the IPv6 spellings are still probed

    def close(self) -> None:
        for server in self.servers:
            server.close()


# Host parts that a server name may carry, all of them a loopback address.
LOOPBACK = [
    "127.0.0.1", "127.1", "127.0.1", "2130706433", "0x7f000001", "0x7f.0.0.1", "0177.0.0.1",
    "017700000001", "[::1]", "[::ffff:127.0.0.1]", "[0:0:0:0:0:ffff:7f00:1]", "[::ffff:7f00:1]",
    "[2002:7f00:1::1]", "localhost", socket.gethostname(),
]
# Of those, the IP literals of the server-name grammar and the names every resolver knows from
# /etc/hosts: these resolve, so the refusal is of the address (the numeric spellings above are
# names to a resolver, which may or may not map them to 127.0.0.1: either way, no connection).
RESOLVED_LOOPBACK = [
    "127.0.0.1", "[::1]", "[::ffff:127.0.0.1]", "[0:0:0:0:0:ffff:7f00:1]", "[::ffff:7f00:1]",
    "[2002:7f00:1::1]", "localhost",
]
# Non-public addresses no listener here can stand in for: the refusal itself is checked.
ELSEWHERE = [
    "10.0.0.1", "169.254.169.254", "192.168.0.1", "172.16.0.1", "100.64.0.1", "0.0.0.0",
    "[::]", "[fe80::1]", "[fc00::1]", "[::ffff:10.0.0.1]", "[::ffff:169.254.169.254]",
]


@dataclass
class World:
    api: MatrixApi
    alice: User
    room_id: str
    listener: Listener
    db: Database
    metrics_url: str


@pytest.fixture(scope="module")
async def world(
    postgres_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    data_dir: Path = tmp_path_factory.mktemp("audit-ssrf")
    listener = Listener()
    await listener.start()
    try:
        async with module_server(postgres_dsn, data_dir) as server, \
                aiohttp.ClientSession() as http:
            api = MatrixApi(server.url, http)
            alice = await api.register("alice")
            room_id = await api.create_room(alice, preset="public_chat")
            assert server.hs.db is not None
            metrics_url = f"http://127.0.0.1:{server.hs.ports['metrics']}"
            yield World(api, alice, room_id, listener, server.hs.db, metrics_url)
    finally:
        listener.close()


# A 500 is logged as an error by the middleware: any error logged fails the test.
pytestmark = pytest.mark.usefixtures("no_server_errors")


Reply = tuple[int, Any]
Probe = Callable[[World, str], Awaitable[Reply]]


def _probes() -> dict[str, Probe]:
    def get(path: str, **params: str) -> Probe:
        async def probe(w: World, server: str) -> Reply:
            return await w.api.request(
                "GET", path.format(server=server, q=quote(server, safe="")), token=w.alice.token,
                params={k: v.format(server=server) for k, v in params.items()} or None,
            )
        return probe

    def post(path: str, body: Callable[[World, str], Any]) -> Probe:
        async def probe(w: World, server: str) -> Reply:
            return await w.api.request(
                "POST", path.format(server=server, q=quote(server, safe=""),
                                    room=w.room_id),
                json=body(w, server), token=w.alice.token,
            )
        return probe

    return {
        "media_download": get("/_matrix/client/v1/media/download/{q}/abcdef"),
        "media_thumbnail": get("/_matrix/client/v1/media/thumbnail/{q}/abcdef",
                               width="32", height="32"),
        "legacy_media_download": get("/_matrix/media/v3/download/{q}/abcdef"),
        "profile": get("profile/@u:{q}"),
        "alias": get("directory/room/%23probe:{q}"),
        "public_rooms": get("publicRooms", server="{server}"),
        "keys_query": post("keys/query", lambda w, s: {"device_keys": {f"@u:{s}": []}}),
        "keys_claim": post("keys/claim", lambda w, s: {
            "one_time_keys": {f"@u:{s}": {"DEV": "signed_curve25519"}}}),
        "join_alias": post("join/%23probe:{q}", lambda w, s: {}),
        "join_room_via": post("join/%21probe:{q}?server_name={q}", lambda w, s: {}),
        "invite": post("rooms/{room}/invite", lambda w, s: {"user_id": f"@u:{s}"}),
    }


PROBES = _probes()


def _server_name(host: str, port: int) -> str:
    return f"{host}:{port}"


@pytest.mark.parametrize("host", LOOPBACK)
@pytest.mark.parametrize("name", list(PROBES))
async def test_no_connection_to_loopback(world: World, name: str, host: str) -> None:
    server = _server_name(host, world.listener.port)
    before = list(world.listener.connections)
    status, reply = await PROBES[name](world, server)
    assert status != 500 and status < 600, (status, reply)
    _assert_nothing_fetched(name, status, reply, server)
    assert world.listener.connections == before, (name, server)


async def refusals(w: World) -> float:
    """moot_federation_addresses_refused_total over all reasons, from the metrics listener."""
    async with w.api.session.get(f"{w.metrics_url}/metrics") as response:
        text = await response.text()
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
        if line.startswith("moot_federation_addresses_refused_total{")
    )


# The probes whose server name goes to outbound federation (remote media is not fetched at all).
FEDERATING = ["profile", "alias", "keys_query", "keys_claim", "join_alias",
              "join_room_via", "invite", "public_rooms"]


@pytest.mark.parametrize("host", ELSEWHERE + RESOLVED_LOOPBACK)
@pytest.mark.parametrize("name", FEDERATING)
async def test_non_public_addresses_are_refused_before_connecting(
    world: World, name: str, host: str
) -> None:
    """The refusal the metric counts comes before any connection is opened."""
    server = _server_name(host, 8448)
    before = await refusals(world)
    status, reply = await PROBES[name](world, server)
    assert status != 500, (status, reply)
    _assert_nothing_fetched(name, status, reply, server)
    assert await refusals(world) > before, (name, server, status, reply)


def _assert_nothing_fetched(name: str, status: int, reply: Any, server: str) -> None:
    if name in ("keys_query", "keys_claim"):
        assert status == 200, reply
        assert server in reply.get("failures", {}), reply
    else:
        assert status >= 400, (status, reply)


async def test_queued_sends_and_pushers_never_connect(world: World) -> None:
    """Work the server does later (to-device messages queued for remote servers, pushers
    with a gateway on loopback, which /pushers/set refuses) connects nowhere either: checked
    after an event that would push, and once every queued destination has failed its first
    attempt."""
    api, alice, port = world.api, world.alice, world.listener.port
    status, reply = await api.request("POST", "pushers/set", token=alice.token, json={
        "kind": "http", "app_id": "org.example.app", "pushkey": "key", "lang": "en",
        "app_display_name": "App", "device_display_name": "Phone",
        "data": {"url": f"https://127.0.0.1:{port}/_matrix/push/v1/notify"},
    })
    assert (status, reply["errcode"]) == (400, "M_INVALID_PARAM"), reply
    bob = await api.register("bob")
    await api.join(bob, world.room_id)
    await api.send_message(bob, world.room_id, "a message that notifies alice")
    hosts = [_server_name(h, port) for h in LOOPBACK]
    await api.ok("PUT", "sendToDevice/org.example.probe/t1", token=alice.token, json={
        "messages": {f"@u:{server}": {"DEV": {"probe": True}} for server in hosts}})

    async def all_attempted() -> bool:
        states = await world.db.run(lambda c: outbox.get_destination_states(c, hosts))
        return len(states) == len(hosts) and all(s.failures > 0 for s in states.values())

    await eventually(all_attempted, "a first attempt at every queued destination")
    assert world.listener.connections == []
