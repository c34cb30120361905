"""Authenticating inbound federation requests: the X-Matrix header against the origin's key.

The pure checks live in :mod:`federation.request_auth`; this module adds the one asynchronous
step between them, asking the keyring for the origin's current key. A request is
authenticated only when every step passes, and every failure is a :class:`RequestAuthError`
(401 at the HTTP edge): a key that cannot be found is the sender's problem to fix, never a
500 of ours. Why a key could not be found is logged, not answered (it names addresses).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from federation.keyring import KeyLookupError, Keyring
from federation.request_auth import (
    RequestAuthError,
    check_destination,
    parse_authorization,
    verify_request,
    x_matrix_values,
)
from homeserver.protocol.canonical_json import decode_json_strict
from homeserver.protocol.errors import CanonicalJSONError

log = logging.getLogger(__name__)

# All a sender learns when the origin's key cannot be had.
FAILED_TO_VERIFY = "Failed to verify the request's signature"


class RequestBodyError(Exception):
    """The signed request's body is not JSON, so the signature cannot cover it."""


@dataclass(frozen=True, slots=True)
class AuthenticatedRequest:
    origin: str
    content: Any  # the parsed JSON body, None when the request had none


class RequestAuthenticator:
    """Verifies X-Matrix headers for ``server_name`` with keys from ``keyring``.

    ``on_peer_contact`` is told the origin of every request that authenticates: a peer that
    reaches us is up, so the outbound sender can stop backing off from it.
    """

    def __init__(
        self, server_name: str, keyring: Keyring, *,
        on_peer_contact: Callable[[str], None] | None = None,
    ) -> None:
        self.server_name = server_name
        self.keyring = keyring
        self.on_peer_contact = on_peer_contact

    async def authenticate(
        self, method: str, uri: str, authorization: Iterable[str], body: bytes
    ) -> AuthenticatedRequest:
        """Check a request as received: ``uri`` is the raw request target (path and query),
        ``authorization`` every Authorization header value, ``body`` the raw body."""
        values = x_matrix_values(authorization)
        if not values:
            raise RequestAuthError("missing X-Matrix Authorization header")
        # A sender may send one header per key; they name the same request, so the first
        # one decides (it must verify on its own).
        credentials = parse_authorization(values[0])
        check_destination(credentials, self.server_name)
        content = None
        if body.strip():
            try:
                content = decode_json_strict(body)
            except CanonicalJSONError as e:
                raise RequestBodyError(str(e)) from e
        try:
            key = await self.keyring.get_verify_key(
                credentials.origin, credentials.key_id, for_requests=True
            )
        except KeyLookupError as e:
            # The details (what the origin's name resolved to, why connecting failed) stay in
            # our log: echoed, they would let anyone probe DNS and our network through us.
            log.info("request from %s: cannot check its signature: %s", credentials.origin, e)
            raise RequestAuthError(FAILED_TO_VERIFY) from e
        verify_request(
            credentials, method=method, uri=uri, content=content,
            this_server=self.server_name, verify_key=key,
        )
        if self.on_peer_contact is not None:
            self.on_peer_contact(credentials.origin)
        return AuthenticatedRequest(credentials.origin, content)
