"""Downloading another server's media for local users: the federation side of
`homeserver.services.remote_media.RemoteMedia` (server-server-api.md "Content Repository").

Theory of operation. The signed `GET /_matrix/federation/v1/media/download/{mediaId}` is
asked first; its answer is multipart/mixed, a JSON part (metadata, unused) and then the
content, or a `Location` to fetch it from. A peer that does not know that route is asked the
deprecated `GET /_matrix/media/v3/download/{serverName}/{mediaId}` instead, with
`allow_remote=false` (so it cannot send us on to a third server) and `allow_redirect=true`;
its answer is the content, or a 307/308 to it. "Does not know the route" is Synapse's
reading: 404 or 405 with M_UNRECOGNIZED or without a JSON body, or 400 M_UNRECOGNIZED
(older servers). A `Location` is followed once, to https only, without our signature, and
through the federation transport: to an address its address policy allows, as any peer.

Bounds. From the first lookup to the content's headers the peer has `ANSWER_TIMEOUT_S`, both
routes and a redirect together, so an unreachable, unknown or silent server answers the
client within it (the client's `timeout_ms` is passed on capped at `PEER_WAIT_MS`, so a peer
waiting for an upload answers first); the content then flows under the transport's request
timeout, and the caller stops reading past its byte limit. Errors are MatrixErrors: the peer's
404 is passed on as 404 M_NOT_FOUND, its 504 M_NOT_YET_UPLOADED and M_TOO_LARGE as
themselves, and anything else (unreachable, refused, garbage) is 502, as Synapse answers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import aiohttp
from aiohttp.multipart import content_disposition_filename, parse_content_disposition
from multidict import CIMultiDictProxy
from yarl import URL

from federation.client import FederationClient, path_segment
from federation.remote_queries import peer_failed
from federation.transport import FederationError, read_whole, url_target
from homeserver.errors import MatrixError, not_found
from homeserver.protocol.media_types import is_file_name, is_media_type
from homeserver.services.remote_media import RemoteDownload, remote_too_large

ANSWER_TIMEOUT_S = 10.0
# The longest a peer is asked to wait for an upload still to come: it must answer (504
# M_NOT_YET_UPLOADED at worst) well within ANSWER_TIMEOUT_S.
PEER_WAIT_MS = 5_000
FEDERATION_DOWNLOAD = "/_matrix/federation/v1/media/download/"
LEGACY_DOWNLOAD = "/_matrix/media/v3/download/"
# What is read of an error answer, or of the metadata part (an empty object today).
SMALL_BODY_BYTES = 64 * 1024
CHUNK_BYTES = 64 * 1024
REDIRECTS = (301, 302, 303, 307, 308)
OCTET_STREAM = "application/octet-stream"


class FederationMedia:
    def __init__(self, client: FederationClient) -> None:
        self.client = client

    @asynccontextmanager
    async def download(
        self, server_name: str, media_id: str, max_bytes: int, timeout_ms: int
    ) -> AsyncIterator[RemoteDownload]:
        try:
            async with AsyncExitStack() as stack:
                async with asyncio.timeout(ANSWER_TIMEOUT_S):
                    download = await self._answer(
                        stack, server_name, media_id, max_bytes, min(timeout_ms, PEER_WAIT_MS)
                    )
                yield download
        except TimeoutError:
            raise peer_failed(
                f"{server_name} did not answer within {ANSWER_TIMEOUT_S:g} s"
            ) from None
        except FederationError as e:
            raise peer_failed(f"fetching media from {server_name} failed: {e}") from None

    async def _answer(
        self, stack: AsyncExitStack, server_name: str, media_id: str, max_bytes: int,
        timeout_ms: int,
    ) -> RemoteDownload:
        resp = await stack.enter_async_context(self.client.open(
            "GET", server_name, FEDERATION_DOWNLOAD + path_segment(media_id),
            query={"timeout_ms": str(timeout_ms)},
        ))
        if resp.status == 200:
            return await self._multipart(stack, resp, server_name, max_bytes)
        status, body = await _error_body(resp)
        if not _unknown_endpoint(status, body):
            raise _passed_on(server_name, status, body)
        legacy = await stack.enter_async_context(self.client.open(
            "GET", server_name,
            f"{LEGACY_DOWNLOAD}{path_segment(server_name)}/{path_segment(media_id)}",
            query={"allow_remote": "false", "allow_redirect": "true",
                   "timeout_ms": str(timeout_ms)},
        ))
        location = legacy.headers.get("Location")
        if legacy.status in REDIRECTS and location:
            return await self._redirected(stack, legacy.url.join(URL(location)), max_bytes)
        if legacy.status == 200:
            return _content(legacy.headers, _body_chunks(legacy), max_bytes)
        raise _passed_on(server_name, *await _error_body(legacy))

    async def _multipart(
        self, stack: AsyncExitStack, resp: aiohttp.ClientResponse, server_name: str,
        max_bytes: int,
    ) -> RemoteDownload:
        try:
            reader = aiohttp.MultipartReader(resp.headers, resp.content)
            metadata = await reader.next()
            if not isinstance(metadata, aiohttp.BodyPartReader):
                raise ValueError("no metadata part")
            await _skip(metadata)
            part = await reader.next()
            if not isinstance(part, aiohttp.BodyPartReader):
                raise ValueError("no content part")
        except (ValueError, AssertionError, RuntimeError) as e:
            raise peer_failed(f"{server_name} answered a malformed multipart: {e}") from None
        location = part.headers.get("Location")
        if location:
            return await self._redirected(stack, URL(location), max_bytes)
        return _content(part.headers, _part_chunks(part), max_bytes)

    async def _redirected(self, stack: AsyncExitStack, url: URL, max_bytes: int) -> RemoteDownload:
        if url.scheme != "https" or not url.host:
            raise peer_failed(f"media redirected to {url.scheme or 'a relative'} URL, not https")
        resp = await stack.enter_async_context(
            self.client.transport.open("GET", url_target(url), url.raw_path_qs)
        )
        if resp.status != 200:
            raise peer_failed(f"{url.host} answered the redirected download {resp.status}")
        return _content(resp.headers, _body_chunks(resp), max_bytes)


def _content(
    headers: CIMultiDictProxy[str], chunks: AsyncIterator[bytes], max_bytes: int
) -> RemoteDownload:
    """The content as its headers describe it; types and names a client could not be served
    safely are dropped."""
    declared = headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise remote_too_large(f"{declared} bytes is more than {max_bytes}")
    content_type = headers.get("Content-Type", "").strip()
    return RemoteDownload(
        content_type if is_media_type(content_type) else OCTET_STREAM,
        _file_name(headers.get("Content-Disposition")), chunks,
    )


def _file_name(disposition: str | None) -> str | None:
    if not disposition:
        return None
    _kind, params = parse_content_disposition(disposition)
    name = content_disposition_filename(params, "filename")
    return name if name and is_file_name(name) else None


async def _part_chunks(part: aiohttp.BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(CHUNK_BYTES):
        yield chunk


async def _body_chunks(resp: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    async for chunk in resp.content.iter_chunked(CHUNK_BYTES):
        yield chunk


async def _skip(part: aiohttp.BodyPartReader) -> None:
    """Read past a part we do not use, up to SMALL_BODY_BYTES."""
    size = 0
    async for chunk in _part_chunks(part):
        size += len(chunk)
        if size > SMALL_BODY_BYTES:
            raise ValueError("metadata part too large")


async def _error_body(resp: aiohttp.ClientResponse) -> tuple[int, Any]:
    """The status and the JSON body (None if it is not JSON) of an answer that is not the
    content."""
    answer = await read_whole(resp, SMALL_BODY_BYTES)
    try:
        return answer.status, json.loads(answer.body)
    except ValueError:
        return answer.status, None


def _unknown_endpoint(status: int, body: Any) -> bool:
    errcode = body.get("errcode") if isinstance(body, dict) else None
    if status in (404, 405):
        return not isinstance(body, dict) or errcode == "M_UNRECOGNIZED"
    return status == 400 and errcode == "M_UNRECOGNIZED"


def _passed_on(server_name: str, status: int, body: Any) -> MatrixError:
    errcode = body.get("errcode") if isinstance(body, dict) else None
    if status == 404:
        return not_found(f"{server_name} has no such media")
    if status == 504 and errcode == "M_NOT_YET_UPLOADED":
        return MatrixError(504, "M_NOT_YET_UPLOADED", "Content has not yet been uploaded")
    if errcode == "M_TOO_LARGE":
        return remote_too_large(f"{server_name} says so")
    return peer_failed(f"{server_name} answered {status} {errcode or ''}".rstrip())
