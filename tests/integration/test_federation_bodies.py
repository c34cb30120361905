"""Large federation bodies cost an unauthenticated sender nothing, and nobody the event loop.

Only `PUT /send/{txnId}` takes a full transaction (~9.4 MiB); every other federation route takes
`limits.max_request_body_bytes`, refused by its declared length before the body is read. The
X-Matrix header and its origin's key are checked before the body is read, and a large body is
parsed and verified off the event loop, so the server keeps answering while it happens
(issue 22 item 5: a 9.6 MB body had stalled the loop for 0.7 s).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest
import yarl

from federation.request_auth import authorization_header
from federation.transactions import MAX_TRANSACTION_BYTES
from homeserver.protocol.signing import generate_signing_key, key_id
from tests.federation_peers import Peer, Peers
from tests.raw_http import RawConnection, request_head

SEND = "/_matrix/federation/v1/send/"
KEYS_QUERY = "/_matrix/federation/v1/user/keys/query"
VERSION = "/_matrix/federation/v1/version"
MIB = 1024 * 1024


def big_transaction(origin: str, size: int) -> bytes:
    """A transaction-shaped body of about ``size`` bytes, of many small objects: the most
    parsing work per byte (an EDU nobody handles, holding a long list of tiny objects)."""
    head = json.dumps({"origin": origin, "origin_server_ts": 0, "pdus": []})[:-1].encode()
    count = (size - len(head) - 100) // 8
    items = b",".join([b'{"a":1}'] * count)
    return head + b',"edus":[{"edu_type":"org.example.bulk","content":{"k":[' + items + b"]}}]}"


async def put(
    http: aiohttp.ClientSession, to: Peer, uri: str, body: bytes, authorization: str | None
) -> tuple[int, dict[str, str]]:
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    url = yarl.URL(to.federation_url + uri, encoded=True)
    async with http.put(url, data=body, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def latency(http: aiohttp.ClientSession, to: Peer) -> float:
    start = time.perf_counter()
    async with http.get(to.federation_url + VERSION) as resp:
        assert resp.status == 200
        await resp.read()
    return time.perf_counter() - start


async def test_large_bodies_sent_to_send_do_not_stall_the_server(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    a, b = await peers.new("a"), await peers.new("b")
    # B holds A's key already: the forged requests below cost B a parse, not a key fetch.
    await b.federation.outbound.keyring.get_verify_key(
        a.name, key_id(a.signing_key), for_requests=True
    )
    # The slowest answer in two seconds of asking, on this machine as it is loaded now.
    baseline = 0.0
    until = time.monotonic() + 2
    while time.monotonic() < until:
        baseline = max(baseline, await latency(peer_http, b))

    size = MAX_TRANSACTION_BYTES - 64 * 1024
    body = big_transaction(a.name, size)
    assert size - 1024 < len(body) <= MAX_TRANSACTION_BYTES

    def signed(uri: str, origin: str, key_version: str) -> str:
        # Well-formed, by a key the origin does not publish, for a request without a body.
        return authorization_header("PUT", uri, origin, b.name, None,
                                    generate_signing_key(key_version))

    posts = []
    for i in range(4):
        uri = SEND + uuid.uuid4().hex
        if i % 2:
            # An origin that does not exist: its key cannot be fetched.
            header = signed(uri, "127.0.0.1:1", "x")
        else:
            # A's name and key ID, not A's key: only the body can show the forgery.
            header = signed(uri, a.name, a.signing_key.version)
        posts.append(asyncio.create_task(put(peer_http, b, uri, body, header)))

    worst = 0.0
    probes = 0
    while not all(p.done() for p in posts) or probes < 5:
        worst = max(worst, await latency(peer_http, b))
        probes += 1
    for post in posts:
        status, answer = await post
        assert (status, answer["errcode"]) == (401, "M_UNAUTHORIZED")
    assert worst < baseline + 0.3, (worst, baseline, probes)


@pytest.fixture
async def server(peers: Peers) -> AsyncIterator[Peer]:
    yield await peers.new("b")


async def test_a_large_body_to_another_route_is_refused_before_it_is_read(server: Peer) -> None:
    connection = await RawConnection.open(server.port, tls=True)
    try:
        # 9 MB declared (under the transaction limit /send takes), 64 KiB sent: the answer
        # comes without waiting for the rest.
        await connection.send(request_head("POST", KEYS_QUERY, {
            "Content-Type": "application/json", "Content-Length": str(9 * 1000 * 1000),
        }) + b"{" + b" " * (64 * 1024))
        head = await connection.read_response_head()
        assert head.startswith(b"HTTP/1.1 413 "), head
    finally:
        connection.close()


async def test_a_chunked_body_over_the_limit_is_refused(
    server: Peer, peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    a = await peers.new("a")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b" " * (MIB // 2)
        yield b"{}"

    header = authorization_header("POST", KEYS_QUERY, a.name, server.name, {}, a.signing_key)
    async with peer_http.post(
        server.federation_url + KEYS_QUERY, data=chunks(), headers={"Authorization": header},
    ) as resp:
        assert resp.status == 413
        assert (await resp.json())["errcode"] == "M_TOO_LARGE"
