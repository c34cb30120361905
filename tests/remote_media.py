"""Helpers for tests of other servers' media: raw downloads, a server's stored files, and a
stand-in peer's multipart answers (shared by the integration and Synapse interop tests)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import aiohttp
from aiohttp import web

from tests.helpers import User

V1 = "/_matrix/client/v1/media"
V3 = "/_matrix/media/v3"


async def download(
    http: aiohttp.ClientSession, base_url: str, path: str, user: User | None = None,
) -> tuple[int, Mapping[str, str], bytes]:
    """GET raw bytes from a client API (`path` under it), as `user` if given."""
    headers = {} if user is None else {"Authorization": f"Bearer {user.token}"}
    async with http.get(base_url + path, headers=headers) as resp:
        return resp.status, resp.headers, await resp.read()


def stored_file(data_dir: Path, data: bytes) -> Path:
    """Where a server keeps `data` in its content store (named by the SHA-256)."""
    digest = hashlib.sha256(data).hexdigest()
    return data_dir / "media" / digest[:2] / digest[2:4] / digest


def multipart_answer(
    data: bytes, content_type: str = "application/octet-stream", *,
    location: str | None = None, disposition: str | None = None,
) -> web.Response:
    """A federation media answer: the `{}` metadata part, then the bytes or a `Location`."""
    with aiohttp.MultipartWriter("mixed") as writer:
        writer.append_json({})
        if location is not None:
            writer.append(b"", {"Location": location, "Content-Type": "text/plain"})
        else:
            headers = {"Content-Type": content_type}
            if disposition is not None:
                headers["Content-Disposition"] = disposition
            writer.append(data, headers)
    response = web.Response(body=writer)
    return response
