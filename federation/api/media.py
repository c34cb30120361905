"""`GET /_matrix/federation/v1/media/download/{mediaId}` and `.../thumbnail/{mediaId}`
(server-server-api.md "Content Repository"): this server's own media, for other servers.

Servers from before Matrix 1.11 (and newer ones falling back) ask the deprecated
`/_matrix/media/{v3,r0}/download` and `/thumbnail` instead, on this listener: those are the
client API's own unauthenticated routes, served here unchanged (this server's media only).

The answer is multipart/mixed with exactly two parts, as the spec requires: the metadata
(`{}`, there being none yet) as JSON, then the bytes with their `Content-Type` and
`Content-Disposition`. The file is opened before the answer starts and streamed from that
handle, so a deletion meanwhile cannot cut an answer short. Parameters, limits and errors are
the client endpoints' (`homeserver/api/media.py`); other servers' media is not served here.
"""

from __future__ import annotations

import asyncio
import os
import secrets

from aiohttp import web

from federation.api.auth import authenticated
from federation.api.context import MEDIA
from federation.inbound_auth import AuthenticatedRequest
from homeserver.api.media import (
    content_disposition,
    legacy_download,
    legacy_thumbnail,
    path_media_id,
    thumbnail_disposition,
    thumbnail_size,
    timeout_ms,
)
from homeserver.errors import not_found
from homeserver.services.media import MediaFile

routes = web.RouteTableDef()

PREFIX = "/_matrix/federation/v1/media"
CHUNK_BYTES = 256 * 1024

for _legacy in ("/_matrix/media/v3", "/_matrix/media/r0"):
    routes.get(_legacy + "/download/{serverName}/{mediaId}")(legacy_download)
    routes.get(_legacy + "/download/{serverName}/{mediaId}/{fileName}")(legacy_download)
    routes.get(_legacy + "/thumbnail/{serverName}/{mediaId}")(legacy_thumbnail)


@routes.get(PREFIX + "/download/{mediaId}")
@authenticated
async def download(request: web.Request, auth: AuthenticatedRequest) -> web.StreamResponse:
    media_service = request.app[MEDIA]
    media = await media_service.get_content(
        media_service.server_name, path_media_id(request), timeout_ms(request), None
    )
    return await _multipart(
        request, media, content_disposition(media.content_type, media.upload_name)
    )


@routes.get(PREFIX + "/thumbnail/{mediaId}")
@authenticated
async def thumbnail(request: web.Request, auth: AuthenticatedRequest) -> web.StreamResponse:
    media_service = request.app[MEDIA]
    media_id = path_media_id(request)
    width, height, method = thumbnail_size(request)
    media = await media_service.get_thumbnail(
        media_service.server_name, media_id, width, height, method, timeout_ms(request), None
    )
    return await _multipart(request, media, thumbnail_disposition(media))


async def _multipart(
    request: web.Request, media: MediaFile, disposition: str
) -> web.StreamResponse:
    try:
        file = await asyncio.to_thread(media.path.open, "rb")
    except FileNotFoundError:
        raise not_found("The content of this media is no longer stored") from None
    try:
        size = (await asyncio.to_thread(os.fstat, file.fileno())).st_size
        boundary = secrets.token_hex(16)
        head = (
            f"--{boundary}\r\nContent-Type: application/json\r\n\r\n{{}}\r\n"
            f"--{boundary}\r\nContent-Type: {media.content_type}\r\n"
            f"Content-Disposition: {disposition}\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        response = web.StreamResponse(headers={
            "Content-Type": f"multipart/mixed; boundary={boundary}",
            "Content-Length": str(len(head) + size + len(tail)),
        })
        await response.prepare(request)
        await response.write(head)
        while chunk := await asyncio.to_thread(file.read, CHUNK_BYTES):
            await response.write(chunk)
        await response.write(tail)
        await response.write_eof()
        return response
    finally:
        await asyncio.to_thread(file.close)
