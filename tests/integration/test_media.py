"""The content repository over HTTP: uploads, downloads, thumbnails, limits and safe serving."""

from __future__ import annotations

import asyncio
import io
import os
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import nio
import pytest
from hypothesis import strategies as st
from nio.api import ResizingMethod
from nio.crypto.attachments import decrypt_attachment
from PIL import Image

from tests.bad_input import assert_sane, collect
from tests.conftest import MakeServer, RunningServer
from tests.helpers import MatrixApi, User, validate_response
from tests.images import image_of, png
from tests.nio_clients import new_client, ok, register

V1 = "/_matrix/client/v1/media"
V3 = "/_matrix/media/v3"


@pytest.fixture
async def alice(api: MatrixApi) -> User:
    return await api.register("alice")


async def fetch(
    http: aiohttp.ClientSession, url: str, token: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Mapping[str, str], bytes]:
    """GET raw bytes (MatrixApi decodes text, which would mangle binary content)."""
    all_headers = dict(headers or {})
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    async with http.get(url, headers=all_headers) as resp:
        return resp.status, resp.headers, await resp.read()


async def upload(
    api: MatrixApi, user: User, data: bytes, content_type: str = "application/octet-stream",
    filename: str | None = None,
) -> str:
    """Upload and return the media ID; checks the response against the spec."""
    params = {"filename": filename} if filename is not None else None
    status, body = await api.request(
        "POST", f"{V3}/upload", raw=data, token=user.token,
        headers={"Content-Type": content_type}, params=params,
    )
    assert status == 200, body
    validate_response("content-repo.yaml", "/media/v3/upload", "post", 200, body)
    server, media_id = body["content_uri"].removeprefix("mxc://").split("/")
    assert server == user.user_id.split(":", 1)[1]
    return str(media_id)


def stored_files(server: RunningServer) -> list[Path]:
    root = server.data_dir / "media"
    return [p for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[0] != "tmp"]


# -- upload and download ---------------------------------------------------------------------


async def test_round_trip_on_authenticated_and_legacy_paths(
    api: MatrixApi, homeserver: RunningServer, http: aiohttp.ClientSession, alice: User
) -> None:
    data = png(10, 10)
    media_id = await upload(api, alice, data, "image/png", filename="cat.png")
    for url, token in [
        (f"{api.base_url}{V1}/download/{homeserver.server_name}/{media_id}", alice.token),
        (f"{api.base_url}{V3}/download/{homeserver.server_name}/{media_id}", None),
    ]:
        status, headers, body = await fetch(http, url, token)
        assert status == 200
        assert body == data
        assert headers["Content-Type"] == "image/png"
        assert headers["Content-Disposition"] == 'inline; filename="cat.png"'
        assert headers["Content-Security-Policy"].startswith("sandbox;")
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Cross-Origin-Resource-Policy"] == "cross-origin"
        assert headers["Access-Control-Allow-Origin"] == "*"


async def test_encrypted_attachment_is_an_opaque_blob(
    api: MatrixApi, homeserver: RunningServer, http: aiohttp.ClientSession, alice: User
) -> None:
    """Random bytes, larger than the JSON body limit, come back byte for byte."""
    data = os.urandom(3 * 1024 * 1024 + 17)
    media_id = await upload(api, alice, data)
    status, headers, body = await fetch(
        http, f"{api.base_url}{V1}/download/{homeserver.server_name}/{media_id}", alice.token
    )
    assert status == 200
    assert body == data
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Content-Disposition"] == "attachment"


async def test_range_requests_serve_part_of_the_file(
    api: MatrixApi, homeserver: RunningServer, http: aiohttp.ClientSession, alice: User
) -> None:
    data = bytes(range(256)) * 4
    media_id = await upload(api, alice, data, "audio/ogg")
    status, _, body = await fetch(
        http, f"{api.base_url}{V1}/download/{homeserver.server_name}/{media_id}", alice.token,
        headers={"Range": "bytes=10-19"},
    )
    assert (status, body) == (206, data[10:20])


async def test_same_bytes_are_stored_once(
    api: MatrixApi, homeserver: RunningServer, http: aiohttp.ClientSession, alice: User
) -> None:
    data = os.urandom(4096)
    first = await upload(api, alice, data, filename="a.bin")
    second = await upload(api, alice, data, "text/plain", filename="b.txt")
    assert first != second
    assert len(stored_files(homeserver)) == 1
    # Each media ID keeps its own type and name.
    _, headers, body = await fetch(
        http, f"{api.base_url}{V1}/download/{homeserver.server_name}/{second}", alice.token
    )
    assert body == data
    assert headers["Content-Type"] == "text/plain"
    assert headers["Content-Disposition"] == 'inline; filename="b.txt"'
    await upload(api, alice, b"other bytes")
    assert len(stored_files(homeserver)) == 2


async def test_file_name_in_the_path_and_encoded_names(
    api: MatrixApi, homeserver: RunningServer, http: aiohttp.ClientSession, alice: User
) -> None:
    media_id = await upload(api, alice, b"%PDF-1.4", "application/pdf", filename="Krieg.pdf")
    base = f"{api.base_url}{V1}/download/{homeserver.server_name}/{media_id}"
    _, headers, _ = await fetch(http, f"{base}/report.pdf", alice.token)
    assert headers["Content-Disposition"] == 'attachment; filename="report.pdf"'
    _, headers, _ = await fetch(http, f"{base}/{quote('Война и мир.pdf')}", alice.token)
    assert headers["Content-Disposition"] == (
        "attachment; filename*=utf-8''%D0%92%D0%BE%D0%B9%D0%BD%D0%B0%20%D0%B8%20%D0%BC%D0%B8%D1"
        "%80.pdf"
    )
    quoted = quote('a"b.pdf')
    _, headers, _ = await fetch(http, f"{base}/{quoted}", alice.token)
    assert headers["Content-Disposition"] == "attachment; filename*=utf-8''a%22b.pdf"
    legacy = f"{api.base_url}{V3}/download/{homeserver.server_name}/{media_id}/x.pdf"
    status, headers, _ = await fetch(http, legacy)
    assert status == 200
    assert headers["Content-Disposition"] == 'attachment; filename="x.pdf"'


@pytest.mark.parametrize(
    "content_type",
    ["text/html", "text/html; charset=utf-8", "image/svg+xml", "application/javascript",
     "application/xhtml+xml", "TEXT/HTML"],
)
async def test_active_content_is_never_inline(
    api: MatrixApi, homeserver: RunningServer, http: aiohttp.ClientSession, alice: User,
    content_type: str,
) -> None:
    data = b"<html><script>alert(1)</script></html>"
    media_id = await upload(api, alice, data, content_type, filename="x.html")
    status, headers, body = await fetch(
        http, f"{api.base_url}{V3}/download/{homeserver.server_name}/{media_id}"
    )
    assert (status, body) == (200, data)
    assert headers["Content-Type"] == content_type
    assert headers["Content-Disposition"] == 'attachment; filename="x.html"'
    assert headers["Content-Security-Policy"].startswith("sandbox;")
    assert headers["X-Content-Type-Options"] == "nosniff"


async def test_config(api: MatrixApi, alice: User) -> None:
    for schema, path in [("authed-content-repo.yaml", "/media/config"),
                         ("content-repo.yaml", "/media/v3/config")]:
        url = f"{V1}/config" if schema.startswith("authed") else f"{V3}/config"
        body = await api.ok("GET", url, token=alice.token)
        validate_response(schema, path, "get", 200, body)
        assert body["m.upload.size"] == 50 * 1024 * 1024


async def test_upload_over_the_limit_is_too_large(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    server = await make_homeserver(overrides={"media.max_upload_bytes": 1000})
    api = MatrixApi(server.url, http)
    alice = await api.register("alice")
    body = await api.ok("GET", f"{V1}/config", token=alice.token)
    assert body["m.upload.size"] == 1000
    await upload(api, alice, b"x" * 1000)
    status, body = await api.request("POST", f"{V3}/upload", raw=b"x" * 1001, token=alice.token)
    assert (status, body["errcode"]) == (413, "M_TOO_LARGE")

    async def chunked() -> Any:  # no Content-Length: the limit is enforced while streaming
        for _ in range(3):
            yield b"y" * 600

    async with http.post(
        f"{server.url}{V3}/upload", data=chunked(),
        headers={"Authorization": f"Bearer {alice.token}"},
    ) as resp:
        assert resp.status == 413
        assert (await resp.json())["errcode"] == "M_TOO_LARGE"
    assert len(stored_files(server)) == 1
    assert not any((server.data_dir / "media" / "tmp").iterdir())


# -- errors ---------------------------------------------------------------------------------


async def test_authenticated_endpoints_need_a_token(
    api: MatrixApi, homeserver: RunningServer, alice: User
) -> None:
    media_id = await upload(api, alice, b"hello", "text/plain")
    ref = f"{homeserver.server_name}/{media_id}"
    for method, path in [
        ("POST", f"{V3}/upload"), ("POST", "/_matrix/media/v1/create"),
        ("PUT", f"{V3}/upload/{ref}"), ("GET", f"{V1}/download/{ref}"),
        ("GET", f"{V1}/download/{ref}/f.txt"), ("GET", f"{V1}/thumbnail/{ref}?width=1&height=1"),
        ("GET", f"{V1}/config"), ("GET", f"{V3}/config"), ("GET", f"{V1}/preview_url?url=x"),
    ]:
        status, body = await api.request(method, path, raw=b"x")
        assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN"), path
        status, body = await api.request(method, path, raw=b"x", token="bogus")
        assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN"), path


async def test_unknown_remote_and_malformed_media(
    api: MatrixApi, homeserver: RunningServer, alice: User
) -> None:
    """(Other servers' media on the authenticated paths: tests/integration/test_remote_media.py.)"""
    name = homeserver.server_name
    for prefix, token in [(V1, alice.token), (V3, None)]:
        for ref, expected in [
            (f"{name}/abcdefNOSUCHMEDIA", (404, "M_NOT_FOUND")),
            *([("other.invalid/abcdef", (404, "M_NOT_FOUND"))] if prefix == V3 else []),
            (f"{name}/{quote('a b', safe='')}", (400, "M_INVALID_PARAM")),
            (f"{name}/a.b", (400, "M_INVALID_PARAM")),
            (f"{quote('bad server!', safe='')}/abcdef", (400, "M_INVALID_PARAM")),
        ]:
            for path in [f"{prefix}/download/{ref}", f"{prefix}/thumbnail/{ref}?width=8&height=8"]:
                status, body = await api.request("GET", path, token=token)
                assert (status, body["errcode"]) == expected, path


async def test_bad_upload_headers_and_names(api: MatrixApi, alice: User) -> None:
    for headers, params in [
        ({"Content-Type": "not a type"}, None),
        ({"Content-Type": "text/plain; x=\u00e9"}, None),
        ({"Content-Type": "text/plain"}, {"filename": "a\nb"}),
        ({"Content-Type": "text/plain"}, {"filename": "x" * 256}),
    ]:
        status, body = await api.request(
            "POST", f"{V3}/upload", raw=b"x", token=alice.token, headers=headers, params=params,
        )
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), (headers, params)


async def test_preview_url_previews_nothing_by_default(api: MatrixApi, alice: User) -> None:
    """`media.url_previews.enabled` is off by default: nothing is fetched and every URL has
    no preview data (tests/integration/test_url_previews.py covers previews on)."""
    for prefix in (V1, V3):
        body = await api.ok(
            "GET", f"{prefix}/preview_url", token=alice.token, params={"url": "https://x.org"}
        )
        assert body == {}
        status, body = await api.request("GET", f"{prefix}/preview_url", token=alice.token)
        assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")


# -- asynchronous upload (POST /create, then PUT) -------------------------------------------


async def test_create_then_upload(
    api: MatrixApi, homeserver: RunningServer, http: aiohttp.ClientSession, alice: User
) -> None:
    bob = await api.register("bob")
    created = await api.ok("POST", "/_matrix/media/v1/create", token=alice.token)
    validate_response("content-repo.yaml", "/media/v1/create", "post", 200, created)
    ref = created["content_uri"].removeprefix("mxc://")
    download = f"{api.base_url}{V1}/download/{ref}"

    status, _, body = await fetch(http, f"{download}?timeout_ms=0", alice.token)
    assert status == 504
    assert b"M_NOT_YET_UPLOADED" in body
    waiting = asyncio.create_task(fetch(http, f"{download}?timeout_ms=30000", alice.token))

    status, body = await api.request("PUT", f"{V3}/upload/{ref}", raw=b"late", token=bob.token)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await api.request(
        "PUT", f"{V3}/upload/{ref}", raw=b"late", token=alice.token,
        headers={"Content-Type": "text/plain"}, params={"filename": "late.txt"},
    )
    assert (status, body) == (200, {})
    validate_response(
        "content-repo.yaml", "/media/v3/upload/{serverName}/{mediaId}", "put", 200, body
    )
    status, headers, data = await waiting
    assert (status, data) == (200, b"late")
    assert headers["Content-Disposition"] == 'inline; filename="late.txt"'

    status, body = await api.request("PUT", f"{V3}/upload/{ref}", raw=b"again", token=alice.token)
    assert (status, body["errcode"]) == (409, "M_CANNOT_OVERWRITE_MEDIA")
    status, body = await api.request(
        "PUT", f"{V3}/upload/{homeserver.server_name}/nosuchmedia", raw=b"x", token=alice.token
    )
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def test_pending_uploads_are_bounded(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    server = await make_homeserver(overrides={"media.max_pending_uploads": 2})
    api = MatrixApi(server.url, http)
    alice = await api.register("alice")
    first = await api.ok("POST", "/_matrix/media/v1/create", token=alice.token)
    await api.ok("POST", "/_matrix/media/v1/create", token=alice.token)
    status, body = await api.request("POST", "/_matrix/media/v1/create", token=alice.token)
    assert (status, body["errcode"]) == (429, "M_LIMIT_EXCEEDED")
    ref = first["content_uri"].removeprefix("mxc://")
    await api.ok("PUT", f"{V3}/upload/{ref}", raw=b"done", token=alice.token)
    await api.ok("POST", "/_matrix/media/v1/create", token=alice.token)


# -- thumbnails -----------------------------------------------------------------------------


async def thumbnail(
    http: aiohttp.ClientSession, api: MatrixApi, server: RunningServer, media_id: str,
    token: str | None, prefix: str = V1, **params: Any,
) -> tuple[int, Mapping[str, str], bytes]:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    url = f"{api.base_url}{prefix}/thumbnail/{server.server_name}/{media_id}?{query}"
    return await fetch(http, url, token)


@pytest.mark.parametrize(
    ("params", "size"),
    [
        ({"width": 320, "height": 240, "method": "scale"}, (320, 160)),
        ({"width": 300, "height": 200, "method": "scale"}, (320, 160)),  # snapped to 320x240
        ({"width": 50, "height": 50}, (320, 160)),  # scale is the default method
        ({"width": 96, "height": 96, "method": "crop"}, (96, 96)),
        ({"width": 20, "height": 20, "method": "crop"}, (32, 32)),
        ({"width": 100, "height": 50, "method": "crop"}, (100, 50)),
        # Taller than the source: cut to the requested aspect ratio, not scaled up.
        ({"width": 900, "height": 600, "method": "crop"}, (750, 500)),
        # Scale fits the image inside the box.
        ({"width": 1000, "height": 300, "method": "scale"}, (600, 300)),
    ],
)
async def test_thumbnail_sizes(
    api: MatrixApi, homeserver: RunningServer, http: aiohttp.ClientSession, alice: User,
    params: dict[str, Any], size: tuple[int, int],
) -> None:
    media_id = await upload(api, alice, png(1000, 500), "image/png")
    status, headers, body = await thumbnail(http, api, homeserver, media_id, alice.token, **params)
    assert status == 200, body
    assert headers["Content-Type"] == "image/png"
    assert headers["Content-Disposition"] == 'inline; filename="thumbnail.png"'
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert image_of(body).size == size


async def test_unusual_thumbnail_sizes_are_bounded_per_image(
    api: MatrixApi, homeserver: RunningServer, http: aiohttp.ClientSession, alice: User,
) -> None:
    """Anyone may ask for any size; past a handful of unusual ones per image the server
    answers with a standard size instead of decoding and storing yet another file."""
    media_id = await upload(api, alice, png(1000, 500), "image/png")
    for i in range(24):
        status, _, body = await thumbnail(
            http, api, homeserver, media_id, alice.token, width=100, height=40 + i,
            method="crop",
        )
        assert status == 200, body
    assert homeserver.hs.db is not None
    stored = await homeserver.hs.db.run(
        lambda c: c.fetchval("SELECT count(*) FROM media_thumbnails")
    )
    assert stored <= 17  # 16 unusual sizes, plus the largest standard crop


async def test_crop_never_upscales(
    api: MatrixApi, homeserver: RunningServer, http: aiohttp.ClientSession, alice: User
) -> None:
    media_id = await upload(api, alice, png(200, 50), "image/png")
    _, _, body = await thumbnail(
        http, api, homeserver, media_id, alice.token, width=96, height=96, method="crop"
    )
    assert image_of(body).size == (50, 50)


async def test_small_images_are_their_own_thumbnail(
    api: MatrixApi, homeserver: RunningServer, http: aiohttp.ClientSession, alice: User
) -> None:
    data = png(40, 30)
    media_id = await upload(api, alice, data, "image/png")
    _, headers, body = await thumbnail(
        http, api, homeserver, media_id, None, prefix=V3, width=320, height=240
    )
    assert body == data
    assert headers["Content-Type"] == "image/png"


async def test_jpeg_thumbnails_and_the_cache(
    api: MatrixApi, homeserver: RunningServer, http: aiohttp.ClientSession, alice: User
) -> None:
    media_id = await upload(api, alice, png(1200, 900, fmt="JPEG"), "image/jpeg")
    before = len(stored_files(homeserver))
    results = [
        await thumbnail(http, api, homeserver, media_id, alice.token, width=640, height=480)
        for _ in range(2)
    ]
    assert results[0][2] == results[1][2]
    assert results[0][1]["Content-Type"] == "image/jpeg"
    assert results[0][1]["Content-Disposition"] == 'inline; filename="thumbnail.jpg"'
    assert image_of(results[0][2]).size == (640, 480)
    assert len(stored_files(homeserver)) == before + 1
    assert homeserver.hs.db is not None
    rows = await homeserver.hs.db.pool.fetchval("SELECT count(*) FROM media_thumbnails")
    assert rows == 1


async def test_animated_gif_gives_a_still_thumbnail(
    api: MatrixApi, homeserver: RunningServer, http: aiohttp.ClientSession, alice: User
) -> None:
    frames = [Image.new("RGB", (64, 64), color) for color in ("red", "blue", "green")]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    media_id = await upload(api, alice, out.getvalue(), "image/gif")
    status, headers, body = await thumbnail(
        http, api, homeserver, media_id, alice.token, width=96, height=96, method="crop",
        animated="true",
    )
    assert status == 200
    assert headers["Content-Type"] == "image/png"
    assert not getattr(image_of(body), "is_animated", False)


async def test_thumbnail_errors(
    api: MatrixApi, homeserver: RunningServer, http: aiohttp.ClientSession, alice: User
) -> None:
    image = await upload(api, alice, png(100, 100), "image/png")
    text = await upload(api, alice, b"just text", "text/plain")
    svg = await upload(api, alice, b'<svg xmlns="http://www.w3.org/2000/svg"/>', "image/svg+xml")
    for media_id, params, expected in [
        (text, {"width": 32, "height": 32}, (400, "M_UNKNOWN")),
        (svg, {"width": 32, "height": 32}, (400, "M_UNKNOWN")),
        (image, {"height": 32}, (400, "M_MISSING_PARAM")),
        (image, {"width": 32}, (400, "M_MISSING_PARAM")),
        (image, {"width": -1, "height": 32}, (400, "M_INVALID_PARAM")),
        (image, {"width": 0, "height": 32}, (400, "M_INVALID_PARAM")),
        (image, {"width": "1.5", "height": 32}, (400, "M_INVALID_PARAM")),
        (image, {"width": 32, "height": 32, "method": "zoom"}, (400, "M_INVALID_PARAM")),
        (image, {"width": 32, "height": 32, "animated": "yes"}, (400, "M_INVALID_PARAM")),
    ]:
        status, _, body = await thumbnail(http, api, homeserver, media_id, alice.token, **params)
        assert status == expected[0], (params, body)
        assert expected[1].encode() in body, (params, body)


async def test_images_with_too_many_pixels_are_not_thumbnailed(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    server = await make_homeserver(overrides={"media.max_image_pixels": 10_000})
    api = MatrixApi(server.url, http)
    alice = await api.register("alice")
    media_id = await upload(api, alice, png(200, 200), "image/png")
    status, _, body = await thumbnail(http, api, server, media_id, alice.token, width=32, height=32)
    assert status == 413
    assert b"M_TOO_LARGE" in body


# -- an unmodified client ------------------------------------------------------------------


async def test_matrix_nio_uploads_thumbnails_and_decrypts(homeserver: RunningServer) -> None:
    """matrix-nio's own upload, thumbnail and download calls, and its attachment encryption."""
    client = new_client(homeserver, "alice")
    try:
        await register(client)
        picture = png(800, 400)
        uploaded, _ = await client.upload(
            io.BytesIO(picture), "image/png", "pic.png", filesize=len(picture)
        )
        uploaded = ok(uploaded, "upload")
        server, media_id = uploaded.content_uri.removeprefix("mxc://").split("/")
        thumb = ok(await client.thumbnail(server, media_id, 96, 96, ResizingMethod.crop), "thumb")
        assert isinstance(thumb, nio.ThumbnailResponse)
        assert thumb.content_type == "image/png"
        assert image_of(thumb.body).size == (96, 96)
        download = ok(await client.download(uploaded.content_uri), "download")
        assert isinstance(download, nio.MemoryDownloadResponse)
        assert (download.body, download.filename) == (picture, "pic.png")

        secret = os.urandom(100_000)
        sent, keys = await client.upload(
            io.BytesIO(secret), "image/png", "secret.png", encrypt=True, filesize=len(secret)
        )
        sent = ok(sent, "encrypted upload")
        assert keys is not None
        fetched = ok(await client.download(sent.content_uri), "encrypted download")
        assert isinstance(fetched, nio.MemoryDownloadResponse)
        plain = decrypt_attachment(
            fetched.body, keys["key"]["k"], keys["hashes"]["sha256"], keys["iv"]
        )
        assert plain == secret
    finally:
        await client.close()


# -- hostile input --------------------------------------------------------------------------

content_types = st.one_of(
    st.sampled_from(["image/png", "text/html", "application/octet-stream", "", "a/b; c=d"]),
    # Anything a client can put in a header line (no CR or LF), non-ASCII included.
    st.text(alphabet=string.printable.strip("\n\r\x0b\x0c") + "éλ", max_size=40),
)
uploads = st.tuples(
    st.binary(max_size=2048), content_types, st.none() | st.text(max_size=40),
)


async def test_uploads_survive_arbitrary_input(
    api: MatrixApi, homeserver: RunningServer, http: aiohttp.ClientSession, alice: User
) -> None:
    for data, content_type, filename in collect(uploads):
        headers = {"Content-Type": content_type} if content_type else {}
        params = {"filename": filename} if filename is not None else None
        status, body = await api.request(
            "POST", f"{V3}/upload", raw=data, token=alice.token, headers=headers, params=params
        )
        assert_sane(status, body, (data, content_type, filename))
        if status != 200:
            continue
        # Whatever the bytes are, asking for a thumbnail of them is never a server error.
        media_id = body["content_uri"].rsplit("/", 1)[1]
        status, _, raw = await thumbnail(
            http, api, homeserver, media_id, alice.token, width=32, height=32
        )
        assert status in (200, 400), raw


async def test_upload_to_survives_arbitrary_input(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    server = await make_homeserver(overrides={"media.max_pending_uploads": 1000})
    api = MatrixApi(server.url, http)
    alice = await api.register("alice")
    for data, content_type, filename in collect(uploads, n=40):
        created = await api.ok("POST", "/_matrix/media/v1/create", token=alice.token)
        ref = created["content_uri"].removeprefix("mxc://")
        headers = {"Content-Type": content_type} if content_type else {}
        params = {"filename": filename} if filename is not None else None
        status, body = await api.request(
            "PUT", f"{V3}/upload/{ref}", raw=data, token=alice.token, headers=headers,
            params=params,
        )
        assert_sane(status, body, (data, content_type, filename))
