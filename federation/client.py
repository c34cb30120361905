"""Outbound federation requests: discovered, signed with X-Matrix, sent over the pooled transport.

Every request this server makes to another server goes through :class:`FederationClient`, so
every one is signed (server-server-api.md "Request Authentication": the origin and destination
are server names *before* delegation), goes where discovery says (to the next of its targets
when one cannot be connected to: SRV records may name several), and is subject to the
transport's address policy, TLS verification and timeouts.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp

from federation.discovery import ServerDiscovery
from federation.request_auth import authorization_header
from federation.transport import (
    DEFAULT_MAX_RESPONSE_BYTES,
    ConnectFailed,
    FederationError,
    ForbiddenAddress,
    Target,
    Transport,
    read_whole,
)
from homeserver.protocol.canonical_json import encode_canonical_json
from homeserver.protocol.signing import SigningKey

__all__ = ["FederationClient", "HttpResponseError", "path_segment"]

Query = Mapping[str, str | Sequence[str]]


class HttpResponseError(FederationError):
    """The remote server answered with a non-2xx status."""

    def __init__(self, destination: str, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        self.errcode = body.get("errcode") if isinstance(body, dict) else None
        super().__init__(f"{destination} answered {status} {self.errcode or ''}".rstrip())


def path_segment(value: str) -> str:
    """``value`` percent-encoded for use as one path segment (user IDs, server names...)."""
    return quote(value, safe="")


class FederationClient:
    """Signed JSON requests to other homeservers, as ``server_name``."""

    def __init__(
        self, server_name: str, signing_key: SigningKey, transport: Transport,
        discovery: ServerDiscovery,
    ) -> None:
        self.server_name = server_name
        self.signing_key = signing_key
        self.transport = transport
        self.discovery = discovery

    async def request(
        self, method: str, destination: str, path: str, *, query: Query | None = None,
        content: Any = None, max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> Any:
        """Send a signed request and return the parsed JSON answer.

        ``path`` is already percent-encoded (see :func:`path_segment`); the signature covers
        it and the query exactly as they go on the request line. ``content`` None sends no
        body. Raises :class:`HttpResponseError` for a non-2xx answer, ForbiddenAddress or
        another :class:`FederationError` when the server cannot be reached.
        """
        async with self.open(method, destination, path, query=query, content=content) as resp:
            response = await read_whole(resp, max_bytes)
        try:
            parsed = json.loads(response.body) if response.body else None
        except ValueError:
            parsed = None
            if 200 <= response.status < 300:
                raise FederationError(f"{destination} answered with invalid JSON") from None
        if not 200 <= response.status < 300:
            raise HttpResponseError(destination, response.status, parsed)
        return parsed

    @asynccontextmanager
    async def open(
        self, method: str, destination: str, path: str, *, query: Query | None = None,
        content: Any = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Send a signed request (as `request` does); the answer, whatever its status, with
        its body the caller's to read while the context is open (media, streamed)."""
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/': {path!r}")
        uri = path
        if query:
            uri += "?" + urlencode(query, doseq=True, quote_via=quote)
        targets = await self.discovery.resolve(destination)
        headers = {
            "Authorization": authorization_header(
                method, uri, self.server_name, destination, content, self.signing_key
            ),
        }
        body = None
        if content is not None:
            # Lenient: a transaction may carry PDUs of rooms v1-v5 (floats, big integers).
            body = encode_canonical_json(content, strict=False)
            headers["Content-Type"] = "application/json"
        async with self._open_first(method.upper(), targets, uri, headers, body) as resp:
            yield resp

    @asynccontextmanager
    async def _open_first(
        self, method: str, targets: Sequence[Target], uri: str, headers: Mapping[str, str],
        body: bytes | None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """The answer of the first target (in discovery's order) that takes the connection;
        a target that takes it and then fails is not left for the next (the request may
        have been acted on)."""
        failure: FederationError | None = None
        async with AsyncExitStack() as stack:
            for target in targets:
                try:
                    resp = await stack.enter_async_context(
                        self.transport.open(method, target, uri, headers=headers, body=body)
                    )
                    break
                except (ConnectFailed, ForbiddenAddress) as e:
                    failure = e
            else:
                assert failure is not None, "discovery gives at least one target"
                raise failure
            yield resp

    async def get_json(self, destination: str, path: str, query: Query | None = None) -> Any:
        return await self.request("GET", destination, path, query=query)

    async def post_json(
        self, destination: str, path: str, content: Any, query: Query | None = None
    ) -> Any:
        return await self.request("POST", destination, path, query=query, content=content)

    async def put_json(
        self, destination: str, path: str, content: Any, query: Query | None = None
    ) -> Any:
        return await self.request("PUT", destination, path, query=query, content=content)
