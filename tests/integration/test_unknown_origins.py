"""Signed federation requests from origins we know nothing of: what they cost and reveal.

Anyone can sign a request as a made-up origin. Checking it means fetching the origin's key,
which costs a discovery, an address lookup and a connection attempt, and may fail for reasons
that name addresses. So the answer is a generic 401 (the details go to our log), and fetches
for unknown servers have a budget per minute.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import yarl

from federation.request_auth import authorization_header
from homeserver.protocol.signing import generate_signing_key
from tests.conftest import MakeServer, RunningServer
from tests.federation_helpers import StandIn, StaticResolver, json_handler

PROFILE_URI = "/_matrix/federation/v1/query/profile?user_id=%40alice%3Alocalhost"
KEY_PATH = "/_matrix/key/v2/server"


async def signed_request(
    http: aiohttp.ClientSession, server: RunningServer, origin: str
) -> tuple[int, dict[str, object]]:
    auth = authorization_header(
        "GET", PROFILE_URI, origin, server.server_name, None, generate_signing_key("k1")
    )
    url = yarl.URL(
        f"https://127.0.0.1:{server.hs.ports['federation']}{PROFILE_URI}", encoded=True
    )
    async with http.get(url, headers={"Authorization": auth}, ssl=False) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_a_key_fetch_failure_answers_a_generic_401_that_names_no_address(
    homeserver: RunningServer, http: aiohttp.ClientSession
) -> None:
    # Private addresses are off (the default): the fetch is refused for the address it found.
    assert homeserver.hs.federation is not None
    homeserver.hs.federation.outbound.transport.resolver = StaticResolver(
        {"oracle.test": ["10.11.12.13"]}
    )
    status, body = await signed_request(http, homeserver, "oracle.test:8448")
    assert status == 401, body
    assert body == {
        "errcode": "M_UNAUTHORIZED", "error": "Failed to verify the request's signature",
    }


async def test_key_fetches_for_unknown_origins_are_limited_per_minute(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    peer = await StandIn(tmp_path / "standin").start()
    peer.handlers[KEY_PATH] = json_handler({"errcode": "M_NOT_FOUND"}, status=404)
    try:
        server = await make_homeserver({
            "federation.verify_certificates": False,
            "federation.allow_private_addresses": True,
            "federation.unknown_server_key_fetches_per_minute": 3,
        })
        assert server.hs.federation is not None
        names = [f"o{i}.test" for i in range(10)]
        server.hs.federation.outbound.transport.resolver = StaticResolver(
            {name: ["127.0.0.1"] for name in names}
        )
        for name in names:
            status, body = await signed_request(http, server, f"{name}:{peer.port}")
            assert status == 401, body
        assert peer.hits(KEY_PATH) == 3
    finally:
        await peer.stop()
