"""Authenticating inbound federation requests: the X-Matrix header against the origin's key.

The pure checks live in :mod:`federation.request_auth`; this module adds the asynchronous
steps between them and splits them around the body, so that nobody can make us read or parse
a large body for free:

1. :meth:`RequestAuthenticator.check_header` - before a byte of the body is read: the header
   is well-formed, addressed to us, and names a key of its origin that we hold or can fetch.
   An unsigned request, or one from an origin whose key cannot be found, ends here.
2. The route reads the body (its own size limit; see ``federation/api/auth.py``).
3. :meth:`RequestAuthenticator.check_body` - the body is parsed and the signature, which
   covers it, checked. Both cost time in proportion to the body (a 9.6 MB transaction took
   0.7 s), so a body larger than ``OFF_LOOP_BYTES`` is handled on a one-thread executor of its
   own: the event loop keeps answering other requests, and big bodies wait for each other
   rather than for the loop.

Every failure is a :class:`RequestAuthError` (401 at the HTTP edge): a key that cannot be
found is the sender's problem to fix, never a 500 of ours. Why a key could not be found is
logged, not answered (it names addresses).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from federation.keyring import KeyLookupError, Keyring
from federation.request_auth import (
    RequestAuthError,
    XMatrixCredentials,
    check_destination,
    parse_authorization,
    raw_body_verifies,
    verify_request,
    x_matrix_values,
)
from homeserver.protocol.canonical_json import decode_json_strict
from homeserver.protocol.errors import CanonicalJSONError
from homeserver.protocol.signing import VerifyKeyLike

# Bodies up to this size are parsed and checked on the event loop (well under a millisecond
# per KiB); larger ones on the executor, where a thread hand-off is worth its cost.
OFF_LOOP_BYTES = 256 * 1024
# Large bodies read and held at once; more wait (unread) for a place.
LARGE_BODIES_AT_ONCE = 4

log = logging.getLogger(__name__)

# All a sender learns when the origin's key cannot be had.
FAILED_TO_VERIFY = "Failed to verify the request's signature"


class RequestBodyError(Exception):
    """The signed request's body is not JSON, so the signature cannot cover it."""


@dataclass(frozen=True, slots=True)
class AuthenticatedRequest:
    origin: str
    content: Any  # the parsed JSON body, None when the request had none


@dataclass(frozen=True, slots=True)
class SignedHeader:
    """A request's X-Matrix header, addressed to us, and the origin's key it names."""

    credentials: XMatrixCredentials
    key: VerifyKeyLike


class RequestAuthenticator:
    """Verifies X-Matrix headers for ``server_name`` with keys from ``keyring``.

    ``on_peer_contact`` is told the origin of every request that authenticates: a peer that
    reaches us is up, so the outbound sender can stop backing off from it.
    """

    def __init__(
        self, server_name: str, keyring: Keyring, *,
        on_peer_contact: Callable[[str], None],
    ) -> None:
        self.server_name = server_name
        self.keyring = keyring
        self.on_peer_contact = on_peer_contact
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="moot-federation-body")
        self._large_bodies = asyncio.Semaphore(LARGE_BODIES_AT_ONCE)

    def reading(self, declared_length: int | None) -> AbstractAsyncContextManager[Any]:
        """Where a body is read and checked: a large one (or one of unknown length) waits for
        one of ``LARGE_BODIES_AT_ONCE`` places first. Any server whose key we can fetch gets
        past step 1, and each large body is held in memory while it waits for the one
        thread that checks them: without this, a thousand connections could buffer ~10 GB.
        A waiting request is still bound by the listener's request timeout."""
        if declared_length is not None and declared_length <= OFF_LOOP_BYTES:
            return contextlib.nullcontext()
        return self._large_bodies

    async def check_header(self, authorization: Iterable[str]) -> SignedHeader:
        """Step 1: ``authorization`` is every Authorization header value of the request."""
        values = x_matrix_values(authorization)
        if not values:
            raise RequestAuthError("missing X-Matrix Authorization header")
        # A sender may send one header per key; they name the same request, so the first
        # one decides (it must verify on its own).
        credentials = parse_authorization(values[0])
        check_destination(credentials, self.server_name)
        try:
            key = await self.keyring.get_verify_key(
                credentials.origin, credentials.key_id, for_requests=True
            )
        except KeyLookupError as e:
            # The details (what the origin's name resolved to, why connecting failed) stay in
            # our log: echoed, they would let anyone probe DNS and our network through us.
            log.info("request from %s: cannot check its signature: %s", credentials.origin, e)
            raise RequestAuthError(FAILED_TO_VERIFY) from e
        return SignedHeader(credentials, key)

    async def check_body(
        self, header: SignedHeader, method: str, uri: str, body: bytes
    ) -> AuthenticatedRequest:
        """Step 3: ``uri`` is the raw request target (path and query), ``body`` the raw body."""
        if len(body) > OFF_LOOP_BYTES:
            loop = asyncio.get_running_loop()
            content = await loop.run_in_executor(
                self._executor, self._verify_without_gc, header, method, uri, body
            )
        else:
            content = self._verify(header, method, uri, body)
        self.on_peer_contact(header.credentials.origin)
        return AuthenticatedRequest(header.credentials.origin, content)

    def _verify_without_gc(
        self, header: SignedHeader, method: str, uri: str, body: bytes
    ) -> Any:
        """`_verify`, with the garbage collector paused while it runs (on the executor's one
        thread). Parsing a large body allocates enough to start full collections, and a full
        collection holds the GIL throughout: 0.1 to 0.4 s here, a stall of the event loop.
        What the parse allocates is acyclic and freed by reference counting anyway.

        A refusal is raised again as a copy without its traceback, whose frames hold the
        parsed body: freeing millions of objects is work for this thread, not the loop's."""
        enabled = gc.isenabled()
        gc.disable()
        try:
            return self._verify(header, method, uri, body)
        except (RequestAuthError, RequestBodyError) as e:
            refusal = type(e)(str(e))
        finally:
            if enabled:
                gc.enable()
        raise refusal

    def _verify(self, header: SignedHeader, method: str, uri: str, body: bytes) -> Any:
        """The parsed body, once the signature over it checks (CPU only: runs in a thread).

        A large body must be the very bytes that were signed (the canonical JSON Synapse and
        Moot send): that is checked before parsing, so a forged one costs a hash, not a parse
        of millions of objects whose allocation and release hold the GIL, and with it the
        event loop, for most of a second."""
        if len(body) > OFF_LOOP_BYTES and not raw_body_verifies(
            header.credentials, method=method, uri=uri, this_server=self.server_name,
            verify_key=header.key, raw_content=body,
        ):
            raise RequestAuthError(
                "the X-Matrix signature does not verify over the body as sent (a large body "
                "must be sent as the canonical JSON that was signed)"
            )
        content = None
        if body.strip():
            try:
                content = decode_json_strict(body)
            except CanonicalJSONError as e:
                raise RequestBodyError(str(e)) from e
        verify_request(
            header.credentials, method=method, uri=uri, content=content,
            this_server=self.server_name, verify_key=header.key, raw_content=body,
            gradual=len(body) > OFF_LOOP_BYTES,
        )
        return content

    def close(self) -> None:
        """Let a body being checked finish; refuse new ones."""
        self._executor.shutdown(wait=False, cancel_futures=True)
