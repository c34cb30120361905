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
import threading
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


async def probe(http: aiohttp.ClientSession, to: Peer) -> None:
    """One request the server answers without its database: it shows the loop is free."""
    async with http.get(to.federation_url + VERSION) as resp:
        assert resp.status == 200
        await resp.read()


async def test_large_bodies_sent_to_send_do_not_stall_the_server(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    """Forged full-size transactions are refused while the server goes on answering.

    No wall-clock bound: on a shared 2-core machine a probe's latency jitters by more than any
    bound worth asserting. A stall is what the loop guard (tests/loop_guard.py) measures: it
    fails this test when one callback blocks the loop past its threshold, as parsing such a
    body on the loop did (0.6-0.8 s)."""
    a, b = await peers.new("a"), await peers.new("b")
    # B holds A's key already: the forged requests below cost B a parse, not a key fetch.
    await b.federation.outbound.keyring.get_verify_key(
        a.name, key_id(a.signing_key), for_requests=True
    )
    body = full_size_transaction(a.name)

    posts = []
    for i in range(4):
        uri = SEND + uuid.uuid4().hex
        # An origin that does not exist (its key cannot be fetched), or A's name and key ID
        # without A's key (only the body can show the forgery).
        origin, version = ("127.0.0.1:1", "x") if i % 2 else (a.name, a.signing_key.version)
        header = forged_header(b, uri, origin, version)
        posts.append(asyncio.create_task(put(peer_http, b, uri, body, header)))

    probes = 0
    while not all(p.done() for p in posts) or probes < 5:
        await probe(peer_http, b)
        probes += 1
    for post in posts:
        status, answer = await post
        assert (status, answer["errcode"]) == (401, "M_UNAUTHORIZED")


async def test_a_large_body_is_verified_off_the_loop_while_the_server_answers(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    """While a full-size body is being verified, on another thread, other requests are answered.

    The verification is held in its thread until the probe has its answer, so the order is
    certain: had it run on the loop's thread, nothing else would be answered meanwhile."""
    a, b = await peers.new("a"), await peers.new("b")
    await b.federation.outbound.keyring.get_verify_key(
        a.name, key_id(a.signing_key), for_requests=True
    )
    authenticator = b.federation.authenticator
    verify = authenticator._verify_without_gc  # the step that runs on the executor's thread
    loop = asyncio.get_running_loop()
    entered = asyncio.Event()
    release = threading.Event()
    threads: list[threading.Thread] = []

    def held(*args: object) -> object:
        threads.append(threading.current_thread())
        loop.call_soon_threadsafe(entered.set)
        if threading.current_thread() is not threading.main_thread():
            release.wait(30)
        return verify(*args)

    authenticator._verify_without_gc = held  # type: ignore[method-assign]
    uri = SEND + uuid.uuid4().hex
    post = asyncio.create_task(put(
        peer_http, b, uri, full_size_transaction(a.name),
        forged_header(b, uri, a.name, a.signing_key.version),
    ))
    try:
        await asyncio.wait_for(entered.wait(), 30)
        assert threads[0] is not threading.main_thread()
        await probe(peer_http, b)  # answered while the body's verification is held
        assert not post.done()
    finally:
        release.set()
    status, answer = await post
    assert (status, answer["errcode"]) == (401, "M_UNAUTHORIZED")


def full_size_transaction(origin: str) -> bytes:
    """A body just under the transaction limit that `PUT /send` takes."""
    size = MAX_TRANSACTION_BYTES - 64 * 1024
    body = big_transaction(origin, size)
    assert size - 1024 < len(body) <= MAX_TRANSACTION_BYTES
    return body


def forged_header(to: Peer, uri: str, origin: str, key_version: str) -> str:
    """Well-formed, by a key the origin does not publish, for a request without a body."""
    return authorization_header("PUT", uri, origin, to.name, None,
                                generate_signing_key(key_version))


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
