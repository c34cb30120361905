"""`RemoteMedia`: the seam through which the media service downloads another server's media.

The media service knows only this interface, so it never imports `federation/`;
`homeserver/app.py` hands it the federation implementation (`federation/media_fetch.py`) when
a federation listener is configured, and `NoRemoteMedia` otherwise. A download yields the
content as a stream of chunks, so the service writes it to disk as it arrives; any failure
(unreachable, refused, too large, garbage) is a MatrixError a client may be given.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from homeserver.errors import MatrixError, not_found


def remote_too_large(error: str) -> MatrixError:
    """Another server's content is over `media.max_upload_bytes`: 502 M_TOO_LARGE, the spec's
    answer for remote content too large to serve (and Synapse's)."""
    return MatrixError(502, "M_TOO_LARGE", f"Remote content is too large: {error}")


@dataclass(frozen=True, slots=True)
class RemoteDownload:
    """Another server's answer to a download, its bytes still to read."""

    content_type: str  # checked (`protocol.media_types`); application/octet-stream otherwise
    upload_name: str | None  # from its Content-Disposition, when usable
    chunks: AsyncIterator[bytes]


class RemoteMedia(Protocol):
    def download(
        self, server_name: str, media_id: str, max_bytes: int, timeout_ms: int
    ) -> AbstractAsyncContextManager[RemoteDownload]:
        """Ask `server_name` for its media `media_id`; the content while the context is open.
        Content beyond `max_bytes` fails with 502 M_TOO_LARGE; `timeout_ms` is how long the
        server may wait for an upload still to come."""
        ...


class NoRemoteMedia:
    """A server without federation has no way to other servers' media."""

    def download(
        self, server_name: str, media_id: str, max_bytes: int, timeout_ms: int
    ) -> AbstractAsyncContextManager[RemoteDownload]:
        raise not_found("Media from other servers is not available: federation is off")
