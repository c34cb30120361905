"""Other servers' media, both ways, between real Moot servers over TLS on loopback: the
federation media endpoints, fetching and caching for local users, the legacy fallback and
redirects (stand-in peers playing servers Moot is not), limits, eviction and failures."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from urllib.parse import quote

import aiohttp
from aiohttp import web

from tests.federation_helpers import Handler, StandIn
from tests.federation_peers import Peer, Peers
from tests.helpers import PASSWORD, MatrixApi, User
from tests.images import image_of, png
from tests.remote_media import V1, V3, download, multipart_answer, stored_file

FED_MEDIA = "/_matrix/federation/v1/media"
# The brief's bound on any failure to reach a server: an answer within this, never a hang.
FAIL_WITHIN_S = 15.0


async def upload(api: MatrixApi, user: User, data: bytes, content_type: str,
                 filename: str | None = None) -> str:
    params = {"filename": filename} if filename else None
    body = await api.ok("POST", f"{V3}/upload", raw=data, token=user.token,
                        headers={"Content-Type": content_type}, params=params)
    return str(body["content_uri"]).rsplit("/", 1)[1]


async def two_servers(peers: Peers, http: aiohttp.ClientSession,
                      **b_overrides: object) -> tuple[Peer, User, Peer, User]:
    a, b = await peers.new("a"), await peers.new("b", overrides=b_overrides)
    return a, await a.api(http).register("alice"), b, await b.api(http).register("bob")


async def stand_in(tmp_path: Path) -> StandIn:
    return await StandIn(tmp_path / "standin").start()


async def test_a_users_image_downloads_and_thumbnails_on_another_server(
    peers: Peers, peer_http: aiohttp.ClientSession,
) -> None:
    a, alice, b, bob = await two_servers(peers, peer_http)
    data = png(200, 100)
    media_id = await upload(a.api(peer_http), alice, data, "image/png", "cat.png")
    ref = f"{a.name}/{media_id}"

    status, headers, body = await download(peer_http, b.client_url, f"{V1}/download/{ref}", bob)
    assert (status, body) == (200, data)
    assert headers["Content-Type"] == "image/png"
    assert headers["Content-Disposition"] == 'inline; filename="cat.png"'
    assert stored_file(b.data_dir, data).is_file()
    status, headers, body = await download(
        peer_http, b.client_url, f"{V1}/thumbnail/{ref}?width=32&height=32&method=crop", bob
    )
    assert status == 200 and image_of(body).size == (32, 32), headers

    # Cached: served with the origin stopped.
    await a.stop()
    status, _, body = await download(
        peer_http, b.client_url, f"{V1}/download/{ref}/renamed.png", bob
    )
    assert (status, body) == (200, data)
    # The deprecated unauthenticated paths serve no other server's media (the spec's freeze).
    for path in [f"{V3}/download/{ref}", f"{V3}/thumbnail/{ref}?width=32&height=32"]:
        status, _, body = await download(peer_http, b.client_url, path)
        assert status == 404, body


async def test_the_federation_endpoints_answer_multipart(
    peers: Peers, peer_http: aiohttp.ClientSession,
) -> None:
    a, alice, b, _ = await two_servers(peers, peer_http)
    data = png(64, 64)
    media_id = await upload(a.api(peer_http), alice, data, "image/png", "dog.png")
    client = b.federation.outbound.client  # b asks a, signed as b

    async def parts(path: str) -> list[tuple[dict[str, str], bytes]]:
        async with client.open("GET", a.name, path) as resp:
            assert resp.status == 200, await resp.text()
            assert resp.headers["Content-Type"].startswith("multipart/mixed; boundary=")
            reader = aiohttp.MultipartReader.from_response(resp)
            found = []
            while (part := await reader.next()) is not None:
                assert isinstance(part, aiohttp.BodyPartReader)
                found.append((dict(part.headers), bytes(await part.read())))
            return found

    (meta_headers, meta), (headers, body) = await parts(f"{FED_MEDIA}/download/{media_id}")
    assert (meta_headers["Content-Type"], meta) == ("application/json", b"{}")
    assert (headers["Content-Type"], body) == ("image/png", data)
    assert headers["Content-Disposition"] == 'inline; filename="dog.png"'
    [_, (headers, body)] = await parts(
        f"{FED_MEDIA}/thumbnail/{media_id}?width=32&height=32&method=crop"
    )
    assert headers["Content-Type"] == "image/png" and image_of(body).size == (32, 32)

    for path, expected in [
        (f"{FED_MEDIA}/download/NOSUCHMEDIA", (404, "M_NOT_FOUND")),
        (f"{FED_MEDIA}/download/{quote('a.b')}", (400, "M_INVALID_PARAM")),
        (f"{FED_MEDIA}/thumbnail/{media_id}?width=32", (400, "M_MISSING_PARAM")),
        (f"{FED_MEDIA}/thumbnail/{media_id}?width=32&height=32&method=x",
         (400, "M_INVALID_PARAM")),
    ]:
        async with client.open("GET", a.name, path) as resp:
            assert (resp.status, (await resp.json())["errcode"]) == expected, path
    # Unsigned: refused.
    async with peer_http.get(f"{a.federation_url}{FED_MEDIA}/download/{media_id}") as resp:
        assert (resp.status, (await resp.json())["errcode"]) == (401, "M_UNAUTHORIZED")
    # Older servers' deprecated paths, on the federation listener: its own media only.
    for prefix in [V3, "/_matrix/media/r0"]:
        legacy = f"{a.federation_url}{prefix}/download"
        async with peer_http.get(f"{legacy}/{a.name}/{media_id}?allow_remote=false") as resp:
            assert (resp.status, await resp.read()) == (200, data)
        async with peer_http.get(f"{legacy}/{b.name}/{media_id}?allow_remote=false") as resp:
            assert resp.status == 404


async def test_bytes_shared_with_local_media_outlive_its_deletion(
    peers: Peers, peer_http: aiohttp.ClientSession,
) -> None:
    """Remote and local media of the same bytes share one file: deleting the local one keeps
    the file the cached remote one still uses."""
    a, alice, b, bob = await two_servers(peers, peer_http)
    data = b"the same bytes on both servers"
    remote_id = await upload(a.api(peer_http), alice, data, "text/plain")
    ref = f"{a.name}/{remote_id}"
    assert (await download(peer_http, b.client_url, f"{V1}/download/{ref}", bob))[0] == 200
    bapi = b.api(peer_http)
    local_id = await upload(bapi, bob, data, "text/plain")
    assert b.hs is not None and b.hs.accounts is not None
    admin_id = await b.hs.accounts.create_user("root", PASSWORD, admin=True)
    admin = await bapi.login(User(admin_id, "", "", PASSWORD))
    await bapi.ok("DELETE", f"/_synapse/admin/v1/media/{b.name}/{local_id}", token=admin.token)

    assert stored_file(b.data_dir, data).is_file()
    status, _, body = await download(peer_http, b.client_url, f"{V1}/download/{ref}", bob)
    assert (status, body) == (200, data)


async def test_concurrent_requests_share_one_fetch(
    peers: Peers, peer_http: aiohttp.ClientSession, tmp_path: Path,
) -> None:
    peer = await stand_in(tmp_path)
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        await release.wait()
        return multipart_answer(b"shared", "text/plain")

    peer.handlers[f"{FED_MEDIA}/download/item"] = slow
    b = await peers.new("b")
    bob = await b.api(peer_http).register("bob")
    path = f"{V1}/download/{peer.server_name}/item"
    requests = [asyncio.create_task(download(peer_http, b.client_url, path, bob))
                for _ in range(5)]
    deadline = time.monotonic() + 10
    while peer.hits(f"{FED_MEDIA}/download/item") == 0:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    # Not synchronisation: a broken single flight would show as a second fetch meanwhile.
    await asyncio.sleep(0.5)
    release.set()
    for status, _, body in await asyncio.gather(*requests):
        assert (status, body) == (200, b"shared")
    assert peer.hits(f"{FED_MEDIA}/download/item") == 1
    await peer.stop()


async def test_a_peer_without_the_federation_route_is_asked_the_legacy_one(
    peers: Peers, peer_http: aiohttp.ClientSession, tmp_path: Path,
) -> None:
    peer = await stand_in(tmp_path)
    legacy = f"{V3}/download/{peer.server_name}/old"

    async def old_server(request: web.Request) -> web.StreamResponse:
        assert request.query["allow_remote"] == "false"
        disposition = "attachment; filename*=utf-8''%C3%A9.txt"
        return web.Response(body=b"old bytes", content_type="text/plain",
                            headers={"Content-Disposition": disposition})

    peer.handlers[legacy] = old_server  # the federation route answers 404 M_UNRECOGNIZED
    b = await peers.new("b")
    bob = await b.api(peer_http).register("bob")
    status, headers, body = await download(
        peer_http, b.client_url, f"{V1}/download/{peer.server_name}/old", bob
    )
    assert (status, body) == (200, b"old bytes")
    assert headers["Content-Disposition"] == "inline; filename*=utf-8''%C3%A9.txt"
    assert peer.hits(f"{FED_MEDIA}/download/old") == 1 and peer.hits(legacy) == 1
    # A real 404 (not an unknown route) is passed on, without trying the legacy route.
    peer.handlers[f"{FED_MEDIA}/download/gone"] = _json(404, "M_NOT_FOUND")
    status, _, body = await download(
        peer_http, b.client_url, f"{V1}/download/{peer.server_name}/gone", bob
    )
    assert status == 404 and b"M_NOT_FOUND" in body
    assert peer.hits(f"{V3}/download/{peer.server_name}/gone") == 0
    await peer.stop()


async def test_a_location_is_followed_only_where_the_address_policy_allows(
    peers: Peers, peer_http: aiohttp.ClientSession, tmp_path: Path,
) -> None:
    peer = await stand_in(tmp_path)

    async def cdn(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"from the cdn", content_type="image/gif")

    peer.handlers["/cdn/file"] = cdn
    for media_id, location in [
        ("moved", f"https://{peer.server_name}/cdn/file"),
        ("unspecified", "https://0.0.0.0:1/cdn/file"),  # refused even with private allowed
        ("multicast", "https://[ff02::1]:1/cdn/file"),
        ("plain", f"http://{peer.server_name}/cdn/file"),
    ]:
        async def answer(request: web.Request, location: str = location) -> web.StreamResponse:
            return multipart_answer(b"", location=location)

        peer.handlers[f"{FED_MEDIA}/download/{media_id}"] = answer
    b = await peers.new("b")
    bob = await b.api(peer_http).register("bob")
    base = f"{V1}/download/{peer.server_name}"
    status, headers, body = await download(peer_http, b.client_url, f"{base}/moved", bob)
    assert (status, headers["Content-Type"], body) == (200, "image/gif", b"from the cdn")
    for media_id, why in [("unspecified", b"refusing to connect"),
                          ("multicast", b"refusing to connect"), ("plain", b"not https")]:
        status, _, body = await download(peer_http, b.client_url, f"{base}/{media_id}", bob)
        assert status == 502 and b"M_UNKNOWN" in body and why in body, (media_id, body)
    assert peer.hits("/cdn/file") == 1
    await peer.stop()


async def test_content_over_the_limit_is_refused_and_not_kept(
    peers: Peers, peer_http: aiohttp.ClientSession, tmp_path: Path,
) -> None:
    peer = await stand_in(tmp_path)
    big = b"x" * 5000

    async def streamed(request: web.Request) -> web.StreamResponse:
        # Multipart without lengths: the limit must hold while reading.
        response = web.StreamResponse(
            headers={"Content-Type": "multipart/mixed; boundary=b0und"}
        )
        await response.prepare(request)
        await response.write(b"--b0und\r\nContent-Type: application/json\r\n\r\n{}\r\n"
                             b"--b0und\r\nContent-Type: text/plain\r\n\r\n")
        for start in range(0, len(big), 500):
            await response.write(big[start:start + 500])
        await response.write(b"\r\n--b0und--\r\n")
        return response

    async def declared(request: web.Request) -> web.StreamResponse:
        return multipart_answer(big, "text/plain")

    peer.handlers[f"{FED_MEDIA}/download/streamed"] = streamed
    peer.handlers[f"{FED_MEDIA}/download/declared"] = declared
    b = await peers.new("b", overrides={"media.max_upload_bytes": 1000})
    bob = await b.api(peer_http).register("bob")
    for media_id in ["streamed", "declared"]:
        path = f"{V1}/download/{peer.server_name}/{media_id}"
        status, _, body = await download(peer_http, b.client_url, path, bob)
        assert status == 502 and b"M_TOO_LARGE" in body, (media_id, body)
    assert not stored_file(b.data_dir, big).exists()
    assert not [p for p in (b.data_dir / "media" / "tmp").iterdir()]
    await peer.stop()


async def test_the_cache_evicts_the_least_recently_used(
    peers: Peers, peer_http: aiohttp.ClientSession, tmp_path: Path,
) -> None:
    peer = await stand_in(tmp_path)
    items = {name: name.encode() * 300 for name in ["one", "two", "three"]}  # ~900 bytes
    for name, data in items.items():
        async def answer(request: web.Request, data: bytes = data) -> web.StreamResponse:
            return multipart_answer(data, "text/plain")

        peer.handlers[f"{FED_MEDIA}/download/{name}"] = answer
    b = await peers.new("b", overrides={"media.remote_cache_max_bytes": 2500})
    bob = await b.api(peer_http).register("bob")

    async def get(name: str) -> None:
        path = f"{V1}/download/{peer.server_name}/{name}"
        status, _, body = await download(peer_http, b.client_url, path, bob)
        assert (status, body) == (200, items[name])

    for name in ["one", "two", "three"]:
        await get(name)
    assert not stored_file(b.data_dir, items["one"]).exists()
    assert stored_file(b.data_dir, items["two"]).exists()
    assert stored_file(b.data_dir, items["three"]).exists()
    await get("two")  # cached: no new fetch
    await get("one")  # evicted: fetched again (and "two", now the oldest fetch, goes)
    assert peer.hits(f"{FED_MEDIA}/download/one") == 2
    assert peer.hits(f"{FED_MEDIA}/download/two") == 1
    await peer.stop()


async def test_unreachable_servers_fail_fast_with_an_errcode(
    peers: Peers, peer_http: aiohttp.ClientSession, tmp_path: Path,
) -> None:
    # Accepts connections and never says a word (not even TLS).
    silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    silent_port = silent.sockets[0].getsockname()[1]
    # Speaks TLS and takes the request, then never answers it.
    never = asyncio.Event()
    mute = await stand_in(tmp_path)

    async def no_answer(request: web.Request) -> web.StreamResponse:
        await never.wait()
        raise AssertionError("unreachable")

    mute.prefix_handlers[FED_MEDIA] = no_answer
    b = await peers.new("b")
    bob = await b.api(peer_http).register("bob")
    try:
        for ref in [f"127.0.0.1:{silent_port}/item", f"{mute.server_name}/item",
                    "nosuchserver.invalid/item", "127.0.0.1:1/item"]:
            for path in [f"{V1}/download/{ref}", f"{V1}/thumbnail/{ref}?width=8&height=8"]:
                started = time.monotonic()
                status, _, body = await download(peer_http, b.client_url, path, bob)
                assert time.monotonic() - started < FAIL_WITHIN_S, path
                assert status in (502, 503, 504) or 400 <= status < 500, (path, status, body)
                assert b'"errcode"' in body, body
    finally:
        silent.close()
        never.set()
        await mute.stop()
    # Bad input is the client's: 400 before anything is fetched.
    for ref in [f"{quote('bad server!', safe='')}/item", "example.org/a.b"]:
        status, _, body = await download(peer_http, b.client_url, f"{V1}/download/{ref}", bob)
        assert (status, b"M_INVALID_PARAM" in body) == (400, True), ref


def _json(status: int, errcode: str) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        return web.json_response({"errcode": errcode, "error": "x"}, status=status)

    return handle
