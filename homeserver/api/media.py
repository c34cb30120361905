"""Client-Server routes of the content repository (spec: "Content repository").

Authenticated downloads live under `/_matrix/client/v1/media`; uploads, `/create` and the
deprecated unauthenticated downloads under `/_matrix/media`. Served content carries the
headers that keep a browser from running it: a sandboxing Content-Security-Policy, `nosniff`,
and `Content-Disposition: inline` only for the spec's list of harmless types.
"""

from __future__ import annotations

import re
import string
from urllib.parse import quote

from aiohttp import web

from homeserver.api.auth import require_requester
from homeserver.api.context import MEDIA, URL_PREVIEWS
from homeserver.api.http import CORS_HEADERS, json_response, query_bool, query_int
from homeserver.errors import MatrixError, invalid_param
from homeserver.protocol.identifiers import is_valid_server_name
from homeserver.protocol.media_types import MAX_FILENAME_CHARS, is_file_name, is_media_type
from homeserver.services.media import MediaFile, Upload
from homeserver.services.media_thumbnails import METHODS
from homeserver.services.requester import Requester

routes = web.RouteTableDef()

CLIENT_V1 = "/_matrix/client/v1/media"
MEDIA_V1 = "/_matrix/media/v1"
MEDIA_V3 = "/_matrix/media/v3"

UPLOAD_CHUNK_BYTES = 64 * 1024
DEFAULT_TIMEOUT_MS = 20_000
MAX_TIMEOUT_MS = 60_000
# Thumbnail dimensions beyond any image we would decode; larger requests are served as this.
MAX_DIMENSION = 65_535

_MEDIA_ID_RE = re.compile(r"[A-Za-z0-9_\-]{1,255}")
# Characters RFC 8187 lets stand unescaped in `filename*`.
_ATTR_CHARS = string.ascii_letters + string.digits + "!#$&+-.^_`|~"

# The spec's "Serving inline content" list; everything else is served as an attachment.
INLINE_TYPES = frozenset({
    "text/css", "text/plain", "text/csv", "application/json", "application/ld+json",
    "image/jpeg", "image/gif", "image/png", "image/apng", "image/webp", "image/avif",
    "video/mp4", "video/webm", "video/ogg", "video/quicktime",
    "audio/mp4", "audio/webm", "audio/aac", "audio/mpeg", "audio/ogg", "audio/wave",
    "audio/wav", "audio/x-wav", "audio/x-pn-wav", "audio/flac", "audio/x-flac",
})
SERVING_HEADERS = {
    **CORS_HEADERS,
    # The spec's recommended policy: even HTML that slips through cannot run or load anything.
    "Content-Security-Policy": (
        "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; "
        "style-src 'unsafe-inline'; media-src 'self'; object-src 'self';"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Resource-Policy": "cross-origin",
    # A media ID's content never changes.
    "Cache-Control": "private, max-age=31536000, immutable",
}
_THUMBNAIL_NAMES = {"image/jpeg": "thumbnail.jpg", "image/png": "thumbnail.png",
                    "image/gif": "thumbnail.gif", "image/webp": "thumbnail.webp"}


@routes.post(MEDIA_V3 + "/upload")
async def upload(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    uri = await request.app[MEDIA].upload(requester, _upload(request))
    return json_response({"content_uri": uri})


@routes.post(MEDIA_V1 + "/create")
async def create(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    uri, expires = await request.app[MEDIA].create(requester)
    return json_response({"content_uri": uri, "unused_expires_at": expires})


@routes.put(MEDIA_V3 + "/upload/{serverName}/{mediaId}")
async def upload_to(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    server_name, media_id = media_ref(request)
    await request.app[MEDIA].upload_to(requester, server_name, media_id, _upload(request))
    return json_response({})


@routes.get(CLIENT_V1 + "/download/{serverName}/{mediaId}")
@routes.get(CLIENT_V1 + "/download/{serverName}/{mediaId}/{fileName}")
async def download(request: web.Request) -> web.StreamResponse:
    return await _download(request, await require_requester(request))


@routes.get(MEDIA_V3 + "/download/{serverName}/{mediaId}")
@routes.get(MEDIA_V3 + "/download/{serverName}/{mediaId}/{fileName}")
async def legacy_download(request: web.Request) -> web.StreamResponse:
    """Deprecated and unauthenticated, but still what older clients call (and older servers:
    this server's own media only)."""
    return await _download(request, None)


@routes.get(CLIENT_V1 + "/thumbnail/{serverName}/{mediaId}")
async def thumbnail(request: web.Request) -> web.StreamResponse:
    return await _thumbnail(request, await require_requester(request))


@routes.get(MEDIA_V3 + "/thumbnail/{serverName}/{mediaId}")
async def legacy_thumbnail(request: web.Request) -> web.StreamResponse:
    return await _thumbnail(request, None)


@routes.get(CLIENT_V1 + "/config")
@routes.get(MEDIA_V3 + "/config")
async def media_config(request: web.Request) -> web.Response:
    await require_requester(request)
    return json_response({"m.upload.size": request.app[MEDIA].max_upload_bytes})


@routes.get(CLIENT_V1 + "/preview_url")
@routes.get(MEDIA_V3 + "/preview_url")
async def preview_url(request: web.Request) -> web.Response:
    """See homeserver/services/url_previews.py; `ts` asks for the preview as it was then (the
    spec lets the server answer a newer one when it kept none that old)."""
    requester = await require_requester(request)
    url = request.query.get("url")
    if not url:
        raise MatrixError(400, "M_MISSING_PARAM", "'url' is required")
    latest = 2**63 - 1  # no `ts` (or one in the future): the current preview
    ts = query_int(request, "ts", latest, lo=0, hi=latest)
    return json_response(await request.app[URL_PREVIEWS].preview(requester, url, ts))


async def _download(request: web.Request, requester: Requester | None) -> web.StreamResponse:
    server_name, media_id = media_ref(request)
    file_name = request.match_info.get("fileName")
    if file_name is not None:
        _check_filename(file_name)
    media = await request.app[MEDIA].get_content(
        server_name, media_id, timeout_ms(request), requester
    )
    name = file_name if file_name is not None else media.upload_name
    return _serve(media, content_disposition(media.content_type, name))


async def _thumbnail(request: web.Request, requester: Requester | None) -> web.StreamResponse:
    server_name, media_id = media_ref(request)
    width, height, method = thumbnail_size(request)
    media = await request.app[MEDIA].get_thumbnail(
        server_name, media_id, width, height, method, timeout_ms(request), requester
    )
    return _serve(media, thumbnail_disposition(media))


def thumbnail_size(request: web.Request) -> tuple[int, int, str]:
    """The `width`, `height` and `method` a thumbnail request asks for (validated)."""
    width, height = _dimension(request, "width"), _dimension(request, "height")
    method = request.query.get("method", "scale")
    if method not in METHODS:
        raise invalid_param(f"'method' must be one of {', '.join(METHODS)}")
    # Animated thumbnails are not made: the spec lets `animated=true` behave as false.
    query_bool(request, "animated")
    return width, height, method


def thumbnail_disposition(media: MediaFile) -> str:
    return f'inline; filename="{_THUMBNAIL_NAMES.get(media.content_type, "thumbnail")}"'


def _serve(media: MediaFile, disposition: str) -> web.FileResponse:
    """The file with its type and the safety headers; FileResponse adds ranges and ETags."""
    return web.FileResponse(media.path, headers={
        **SERVING_HEADERS,
        "Content-Type": media.content_type,
        "Content-Disposition": disposition,
    })


def content_disposition(content_type: str, filename: str | None) -> str:
    """`inline` only for the spec's harmless types; the name quoted per RFC 6266, or
    percent-encoded as `filename*` (RFC 8187) when it is not plain ASCII."""
    base_type = content_type.split(";", 1)[0].strip().lower()
    kind = "inline" if base_type in INLINE_TYPES else "attachment"
    if not filename:
        return kind
    if filename.isascii() and not any(c in filename for c in '"\\') and filename.isprintable():
        return f'{kind}; filename="{filename}"'
    return f"{kind}; filename*=utf-8''{quote(filename, safe=_ATTR_CHARS)}"


def _upload(request: web.Request) -> Upload:
    """The request body as an upload: streamed, never read into memory whole."""
    content_type = request.headers.get("Content-Type", "").strip() or "application/octet-stream"
    if not is_media_type(content_type):
        raise invalid_param("Content-Type is not a valid media type")
    upload_name = request.query.get("filename")
    if upload_name is not None:
        _check_filename(upload_name)
    return Upload(
        request.content.iter_chunked(UPLOAD_CHUNK_BYTES), request.content_length, content_type,
        upload_name or None,
    )


def media_ref(request: web.Request) -> tuple[str, str]:
    """`{serverName}` and `{mediaId}`, restricted as the spec's security section requires
    (valid server name; media ID of `A-Za-z0-9_-` only) so no path can be smuggled in."""
    server_name = request.match_info["serverName"]
    if not is_valid_server_name(server_name):
        raise invalid_param(f"{server_name!r} is not a valid server name")
    return server_name, path_media_id(request)


def path_media_id(request: web.Request) -> str:
    """`{mediaId}`, validated as `media_ref` does."""
    media_id = request.match_info["mediaId"]
    if not _MEDIA_ID_RE.fullmatch(media_id):
        raise invalid_param(f"{media_id!r} is not a valid media ID")
    return media_id


def _check_filename(name: str) -> None:
    if not is_file_name(name):
        raise invalid_param(
            f"A file name is at most {MAX_FILENAME_CHARS} characters, without control characters"
        )


def _dimension(request: web.Request, key: str) -> int:
    raw = request.query.get(key)
    if raw is None:
        raise MatrixError(400, "M_MISSING_PARAM", f"'{key}' is required")
    try:
        value = int(raw)
    except ValueError:
        raise invalid_param(f"'{key}' must be an integer") from None
    if value < 1:
        raise invalid_param(f"'{key}' must be positive")
    return min(value, MAX_DIMENSION)


def timeout_ms(request: web.Request) -> int:
    return query_int(request, "timeout_ms", DEFAULT_TIMEOUT_MS, lo=0, hi=MAX_TIMEOUT_MS)
