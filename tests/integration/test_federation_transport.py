"""The outbound federation transport over real sockets: address refusal, TLS verification,
discovery's `.well-known` fetch and SRV targets, and what a peer actually receives."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import dns.asyncresolver
import dns.message
import dns.rcode
import dns.rrset
import pytest
from aiohttp import web

from federation.client import FederationClient, HttpResponseError
from federation.discovery import (
    DnsSrvResolver,
    HttpsWellKnownFetcher,
    ServerDiscovery,
    SrvRecord,
    WellKnownAnswer,
    order_srv,
)
from federation.request_auth import parse_authorization, verify_request
from federation.stack import make_client
from federation.transport import ConnectFailed, FederationError, ForbiddenAddress, Transport
from homeserver.config import FederationConfig
from homeserver.protocol.addresses import AddressPolicy
from homeserver.protocol.signing import generate_signing_key, verify_key_of
from homeserver.services.clock import SYSTEM_CLOCK
from tests.federation_helpers import (
    INSECURE,
    StandIn,
    StaticResolver,
    free_port,
    insecure_client,
    json_handler,
)

KEY = generate_signing_key("t1")


class FixedSrv:
    def __init__(self, records: dict[str, list[SrvRecord]]) -> None:
        self.records = records

    async def lookup(self, name: str) -> list[SrvRecord]:
        return self.records.get(name, [])


@pytest.fixture
async def stand_in(tmp_path: Path) -> AsyncIterator[StandIn]:
    server = await StandIn(tmp_path / "tls").start()
    yield server
    await server.stop()


async def test_secure_defaults_refuse_loopback_before_connecting() -> None:
    """With `allow_private_addresses: false` nothing is sent to 127.0.0.1: not even a TCP
    connection is opened (the listener counts them)."""
    connections = 0

    def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    listener = await asyncio.start_server(count, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    client = make_client("origin.example", KEY, FederationConfig(), SYSTEM_CLOCK)
    try:
        for destination in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
            with pytest.raises(ForbiddenAddress, match=r"loopback.*allow_private_addresses"):
                await client.get_json(destination, "/_matrix/federation/v1/version")
        await asyncio.sleep(0.05)
        assert connections == 0
    finally:
        await client.transport.close()
        listener.close()
        await listener.wait_closed()


async def test_private_addresses_from_dns_are_refused_too() -> None:
    resolver = StaticResolver({"sneaky.example": ["10.0.0.7", "169.254.169.254"]})
    client = make_client(
        "origin.example", KEY, FederationConfig(), SYSTEM_CLOCK, host_resolver=resolver
    )
    try:
        with pytest.raises(ForbiddenAddress, match=r"10\.0\.0\.7 is private"):
            await client.get_json("sneaky.example:8448", "/_matrix/federation/v1/version")
    finally:
        await client.transport.close()


async def test_certificates_are_verified_unless_switched_off(stand_in: StandIn) -> None:
    stand_in.handlers["/_matrix/federation/v1/version"] = json_handler({"server": {}})
    checking = make_client(
        "origin.example", KEY, FederationConfig(allow_private_addresses=True), SYSTEM_CLOCK
    )
    try:
        with pytest.raises(FederationError, match=r"(?i)certificate"):
            await checking.get_json(stand_in.server_name, "/_matrix/federation/v1/version")
        assert stand_in.requests == []  # the TLS handshake failed: no request was sent
    finally:
        await checking.transport.close()
    trusting = insecure_client("origin.example", KEY)
    try:
        assert await trusting.get_json(
            stand_in.server_name, "/_matrix/federation/v1/version"
        ) == {"server": {}}
    finally:
        await trusting.transport.close()


async def test_requests_are_signed_for_the_destination_with_host_header(
    stand_in: StandIn,
) -> None:
    seen: dict[str, object] = {}

    async def echo(request: web.Request) -> web.Response:
        seen["host"] = request.headers["Host"]
        seen["auth"] = request.headers["Authorization"]
        seen["uri"] = request.raw_path
        seen["body"] = await request.json()
        return web.json_response({"ok": True})

    stand_in.handlers["/_matrix/federation/v1/send/t%201"] = echo
    stand_in.handlers["/_matrix/federation/v1/send/t 1"] = echo
    client = insecure_client("origin.example", KEY)
    try:
        answer = await client.put_json(
            stand_in.server_name, "/_matrix/federation/v1/send/t%201", {"pdus": []},
            query={"a": "b c", "list": ["1", "2"]},
        )
    finally:
        await client.transport.close()
    assert answer == {"ok": True}
    assert seen["host"] == stand_in.server_name
    assert seen["uri"] == "/_matrix/federation/v1/send/t%201?a=b%20c&list=1&list=2"
    creds = parse_authorization(str(seen["auth"]))
    assert (creds.origin, creds.destination, creds.key_id) == (
        "origin.example", stand_in.server_name, "ed25519:t1"
    )
    verify_request(creds, method="PUT", uri=str(seen["uri"]), content={"pdus": []},
                   this_server=stand_in.server_name, verify_key=verify_key_of(KEY))


async def test_error_answers_become_http_response_errors(stand_in: StandIn) -> None:
    stand_in.handlers["/x"] = json_handler({"errcode": "M_FORBIDDEN", "error": "no"}, 403)
    client = insecure_client("origin.example", KEY)
    try:
        with pytest.raises(HttpResponseError) as info:
            await client.get_json(stand_in.server_name, "/x")
        assert (info.value.status, info.value.errcode) == (403, "M_FORBIDDEN")
        with pytest.raises(HttpResponseError) as info:
            await client.get_json(stand_in.server_name, "/nowhere")
        assert info.value.status == 404
        with pytest.raises(FederationError, match="cannot connect"):
            await client.get_json("127.0.0.1:1", "/x")
    finally:
        await client.transport.close()


async def test_a_slow_peer_times_out(stand_in: StandIn) -> None:
    stand_in.handlers["/slow"] = json_handler({}, delay_s=2.0)
    client = make_client(
        "origin.example", KEY,
        FederationConfig(verify_certificates=False, allow_private_addresses=True,
                         request_timeout_s=0.3),
        SYSTEM_CLOCK,
    )
    try:
        with pytest.raises(FederationError, match="Timeout"):
            await client.get_json(stand_in.server_name, "/slow")
    finally:
        await client.transport.close()


# --- discovery over the real transport --------------------------------------------------------

def transport(resolver: StaticResolver) -> Transport:
    return Transport(policy=AddressPolicy(allow_private=True), verify_certificates=False,
                     resolver=resolver)


async def test_well_known_is_fetched_over_https_following_redirects(stand_in: StandIn) -> None:
    async def redirect(request: web.Request) -> web.Response:
        assert request.headers["Host"] == f"example.test:{stand_in.port}"
        raise web.HTTPFound(f"https://moved.test:{stand_in.port}/delegation")

    stand_in.handlers["/.well-known/matrix/server"] = redirect
    stand_in.handlers["/delegation"] = json_handler(
        {"m.server": "matrix.example.test:4443"}, headers={"Cache-Control": "max-age=3600"}
    )
    resolver = StaticResolver({"example.test": ["127.0.0.1"], "moved.test": ["127.0.0.1"]})
    t = transport(resolver)
    try:
        answer = await HttpsWellKnownFetcher(t, port=stand_in.port).fetch("example.test")
    finally:
        await t.close()
    assert answer.status == 200
    assert answer.headers is not None and answer.headers["Cache-Control"] == "max-age=3600"
    assert b"matrix.example.test:4443" in answer.body


async def test_well_known_redirect_loops_and_http_downgrades_are_invalid(
    stand_in: StandIn,
) -> None:
    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/.well-known/matrix/server")

    async def downgrade(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://example.test:{stand_in.port}/x")

    resolver = StaticResolver({"example.test": ["127.0.0.1"]})
    t = transport(resolver)
    fetcher = HttpsWellKnownFetcher(t, port=stand_in.port)
    try:
        stand_in.handlers["/.well-known/matrix/server"] = loop
        assert (await fetcher.fetch("example.test")).status == 302
        assert stand_in.hits("/.well-known/matrix/server") == 1
        stand_in.handlers["/.well-known/matrix/server"] = downgrade
        assert (await fetcher.fetch("example.test")).status == 302
        assert (await fetcher.fetch("nowhere.test")) == WellKnownAnswer(None)
    finally:
        await t.close()


async def test_srv_target_gets_the_servers_name_as_host(stand_in: StandIn) -> None:
    """No .well-known (404), an SRV record pointing elsewhere: the request goes to the SRV
    target's address and port, with `Host` naming the server (not the target)."""
    seen: list[str] = []

    async def version(request: web.Request) -> web.Response:
        seen.append(request.headers["Host"])
        return web.json_response({"server": {"name": "stand-in"}})

    stand_in.handlers["/_matrix/federation/v1/version"] = version
    resolver = StaticResolver({"example.test": ["127.0.0.1"], "target.test": ["127.0.0.1"]})
    t = transport(resolver)
    srv = FixedSrv({"_matrix-fed._tcp.example.test": [SrvRecord(0, 0, stand_in.port,
                                                                 "target.test.")]})
    discovery = ServerDiscovery(srv, HttpsWellKnownFetcher(t, port=stand_in.port), SYSTEM_CLOCK)
    client = FederationClient("origin.example", KEY, t, discovery)
    try:
        body = await client.get_json("example.test", "/_matrix/federation/v1/version")
    finally:
        await t.close()
    assert body == {"server": {"name": "stand-in"}}
    assert seen == ["example.test"]
    assert stand_in.hits("/.well-known/matrix/server") == 1  # asked first, 404


async def test_a_refusing_srv_target_fails_over_to_the_next(stand_in: StandIn) -> None:
    """Two SRV targets: the preferred one (lower priority value) refuses connections, the
    request goes to the next; the whole request failed before SRV failover."""
    stand_in.handlers["/_matrix/federation/v1/version"] = json_handler(
        {"server": {"name": "stand-in"}}
    )
    refusing = free_port()  # nothing listens there
    resolver = StaticResolver({"example.test": ["127.0.0.1"], "down.test": ["127.0.0.1"],
                               "up.test": ["127.0.0.1"]})
    t = transport(resolver)
    srv = FixedSrv({"_matrix-fed._tcp.example.test": [
        SrvRecord(20, 0, stand_in.port, "up.test."), SrvRecord(10, 0, refusing, "down.test."),
    ]})
    discovery = ServerDiscovery(srv, HttpsWellKnownFetcher(t, port=stand_in.port), SYSTEM_CLOCK)
    client = FederationClient("origin.example", KEY, t, discovery)
    try:
        assert [x.host for x in await discovery.resolve("example.test")] == ["down.test", "up.test"]
        body = await client.get_json("example.test", "/_matrix/federation/v1/version")
        assert body == {"server": {"name": "stand-in"}}
        srv.records["_matrix-fed._tcp.example.test"].pop(0)  # only the refusing target left
        with pytest.raises(ConnectFailed, match=f"down.test:{refusing}"):
            await client.get_json("example.test", "/_matrix/federation/v1/version")
    finally:
        await t.close()
    assert stand_in.hits("/_matrix/federation/v1/version") == 1


def test_insecure_config_is_what_tests_use() -> None:
    assert INSECURE.verify_certificates is False and INSECURE.allow_private_addresses is True


# --- SRV lookups through dnspython, against a DNS server on loopback ---------------------------

class _DnsServer(asyncio.DatagramProtocol):
    """Answers SRV queries from a table; NXDOMAIN for anything else."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram endpoint's

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        question = query.question[0]
        records = self.table.get(question.name.to_text(omit_final_dot=True))
        if records is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        else:
            response.answer.append(dns.rrset.from_text_list(
                question.name, 300, "IN", "SRV", records
            ))
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)


async def test_dnspython_srv_lookups_against_a_real_dns_server() -> None:
    table = {
        "_matrix-fed._tcp.example.test": ["10 5 8443 fed.example.test.", "20 0 8444 b.test."],
        "_matrix._tcp.gone.test": ["0 0 0 ."],
    }
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _DnsServer(table), local_addr=("127.0.0.1", 0)
    )
    try:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = ["127.0.0.1"]
        resolver.port = transport.get_extra_info("sockname")[1]
        srv = DnsSrvResolver(resolver)
        records = await srv.lookup("_matrix-fed._tcp.example.test")
        assert sorted(records, key=lambda r: r.priority) == [
            SrvRecord(10, 5, 8443, "fed.example.test"), SrvRecord(20, 0, 8444, "b.test"),
        ]
        assert await srv.lookup("_matrix-fed._tcp.nothing.test") == []
        assert order_srv(await srv.lookup("_matrix._tcp.gone.test"), random.randint) == []
    finally:
        transport.close()


async def test_an_unreachable_dns_server_means_no_srv_record() -> None:
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = 1
    resolver.lifetime = 0.5
    assert await DnsSrvResolver(resolver).lookup("_matrix-fed._tcp.example.test") == []
