"""Helpers for federation tests: free ports, small TLS servers on loopback, clients, schemas.

The stand-in servers are real aiohttp servers on real TLS sockets; they let a test play a
peer that misbehaves in ways a Moot server never would (forged keys, a lying notary).
"""

from __future__ import annotations

import asyncio
import random
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from federation.client import FederationClient
from federation.stack import make_client
from homeserver.config import FederationConfig
from homeserver.protocol.addresses import IPAddress, ip_literal
from homeserver.protocol.signing import SigningKey
from homeserver.services.clock import SYSTEM_CLOCK
from homeserver.setup import write_tls_certificate
from tests.helpers import SPEC_API, validate_response

SS_API = SPEC_API / "server-server"
INSECURE = FederationConfig(verify_certificates=False, allow_private_addresses=True)


def free_port() -> int:
    """A loopback port nothing listens on right now (for server names chosen before start).

    Drawn below the kernel's ephemeral range, not the kernel's own pick (port 0), which comes
    from that range: between this check and the server's bind, any outgoing connection of the
    busy test process could take a port from it as its source port (seen in CI: "address
    already in use" at a worker cluster's start)."""
    low = _ephemeral_start()
    for _ in range(200):
        port = random.randrange(low // 2, low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free loopback port below {low}")


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def tls_context(directory: Path, name: str = "127.0.0.1") -> ssl.SSLContext:
    """A server-side TLS context with a fresh self-signed certificate for ``name``."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "tls.crt", directory / "tls.key"
    write_tls_certificate(cert, key, name)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class StandIn:
    """A TLS server on loopback with handlers a test sets per path; records every request."""

    tls_dir: Path
    port: int = 0
    handlers: dict[str, Handler] = field(default_factory=dict)
    # For paths with a variable tail (a txnId...): the first prefix the path starts with.
    prefix_handlers: dict[str, Handler] = field(default_factory=dict)
    requests: list[web.Request] = field(default_factory=list)
    runner: web.AppRunner | None = None

    @property
    def server_name(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> StandIn:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        tls = tls_context(self.tls_dir)
        site = web.TCPSite(self.runner, "127.0.0.1", self.port, ssl_context=tls)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def hits(self, path: str) -> int:
        return sum(1 for r in self.requests if r.path == path)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request)
        handler = self.handlers.get(request.path) or next(
            (h for p, h in self.prefix_handlers.items() if request.path.startswith(p)), None
        )
        if handler is None:
            return web.json_response({"errcode": "M_UNRECOGNIZED"}, status=404)
        return await handler(request)


def json_handler(body: Any, status: int = 200, delay_s: float = 0.0,
                 headers: dict[str, str] | None = None) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        if delay_s:
            await asyncio.sleep(delay_s)
        return web.json_response(body() if callable(body) else body, status=status,
                                 headers=headers)

    return handle


class StaticResolver:
    """A HostResolver answering from a table (names the tests make up point at loopback)."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        out = [ip_literal(a) for a in self.table.get(host, [])]
        return [ip for ip in out if ip is not None]


def insecure_client(
    server_name: str, signing_key: SigningKey, **kwargs: Any
) -> FederationClient:
    """A client that accepts self-signed certificates and loopback peers (as in tests)."""
    return make_client(server_name, signing_key, INSECURE, SYSTEM_CLOCK, **kwargs)


def validate_ss_response(
    schema_file: str, path: str, method: str, status: int, body: Any
) -> None:
    """Validate a body against the Server-Server OpenAPI definition of that response."""
    validate_response(schema_file, path, method, status, body, api=SS_API)

