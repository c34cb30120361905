"""Reading a response body under a byte limit, for the HTTP clients that fetch from strangers.

Outbound federation (`federation/transport.py`) and URL previews (`url_fetcher.py`) both ask
servers they do not control for bytes, so both stop at a limit: a declared `Content-Length`
over it is refused unread, and otherwise the body is read a chunk at a time until it passes
the limit. aiohttp bounds what one compressed chunk may expand to, so the limit holds for
compressed answers too. Each caller turns :class:`BodyTooLarge` into its own error.
"""

from __future__ import annotations

import aiohttp

CHUNK_BYTES = 65536


class BodyTooLarge(Exception):
    """The body declared, or grew to, more bytes than the limit."""


async def read_bounded(resp: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """The whole body of `resp`, or BodyTooLarge as soon as it is known to pass `max_bytes`."""
    if resp.content_length is not None and resp.content_length > max_bytes:
        raise BodyTooLarge(f"{resp.content_length} bytes is more than {max_bytes}")
    data = bytearray()
    async for chunk in resp.content.iter_chunked(CHUNK_BYTES):
        data += chunk
        if len(data) > max_bytes:
            raise BodyTooLarge(f"more than {max_bytes} bytes")
    return bytes(data)
