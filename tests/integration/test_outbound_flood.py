"""While address lookups of hundreds of other servers hang, local users still log in as usual.

The stand-in is the operating system's resolver itself: `socket.getaddrinfo` blocks for every
name under `hang.test`, as it does for names whose DNS servers never answer. Two floods make
the server look such names up: a to-device message to users of a couple of hundred made-up
servers (each becomes a destination of the federation sender), and signed federation requests
from made-up origins (each asks the keyring for the origin's key). A login, with real argon2,
must be answered while they all still hang: before the lookups had a thread pool of their own,
they filled asyncio's default executor and logins queued behind them until they ended.

No wall-clock bound: the lookups hang until the test ends, so a login answered at all was
answered while they hang, which is certain whatever the machine's load.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp
import yarl

from federation.request_auth import authorization_header
from homeserver.protocol.signing import generate_signing_key
from tests.conftest import RunningServer
from tests.hanging_dns import (
    BLOCKED_THREADS,
    HANGING_DOMAIN,
    LOGIN_DEADLINE_S,
    HangingResolver,
    hanging_dns,
)
from tests.helpers import PASSWORD, MatrixApi

__all__ = ["hanging_dns"]  # the fixture, used by name

DESTINATIONS = 200
ORIGINS = 100


async def login(api: MatrixApi, localpart: str) -> None:
    async with asyncio.timeout(LOGIN_DEADLINE_S):
        await api.ok("POST", "login", json={
            "type": "m.login.password", "password": PASSWORD,
            "identifier": {"type": "m.id.user", "user": localpart},
        })


async def signed_request_from(
    http: aiohttp.ClientSession, server: RunningServer, origin: str
) -> None:
    """A signed federation request from `origin`: checking it needs the origin's key."""
    uri = "/_matrix/federation/v1/query/profile?user_id=%40alice%3Alocalhost"
    auth = authorization_header(
        "GET", uri, origin, server.server_name, None, generate_signing_key("k1")
    )
    url = yarl.URL(f"https://127.0.0.1:{server.hs.ports['federation']}{uri}", encoded=True)
    with contextlib.suppress(aiohttp.ClientError):
        async with http.get(url, headers={"Authorization": auth}, ssl=False) as resp:
            await resp.read()


async def test_logins_answer_while_lookups_of_hundreds_of_servers_hang(
    homeserver: RunningServer, api: MatrixApi, http: aiohttp.ClientSession,
    hanging_dns: HangingResolver,
) -> None:
    alice = await api.register("alice")
    await api.register("bob")

    messages = {
        f"@u{i}:s{i}{HANGING_DOMAIN}:8448": {"*": {"body": "hello"}} for i in range(DESTINATIONS)
    }
    await api.ok(
        "PUT", "sendToDevice/m.test/flood1", json={"messages": messages}, token=alice.token
    )
    origins = [
        asyncio.create_task(signed_request_from(http, homeserver, f"o{i}{HANGING_DOMAIN}:8448"))
        for i in range(ORIGINS)
    ]
    try:
        deadline = time.monotonic() + 30
        while hanging_dns.blocked < BLOCKED_THREADS:  # the lookups have started and hang
            assert time.monotonic() < deadline, "no lookup of a made-up server started"
            await asyncio.sleep(0.05)
        # Every lookup that started hangs until the fixture releases them, after the test.
        for _ in range(3):
            await login(api, "bob")
    finally:
        for task in origins:
            task.cancel()
        await asyncio.gather(*origins, return_exceptions=True)
