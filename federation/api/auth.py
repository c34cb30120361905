"""`@authenticated`: the X-Matrix check in front of every authenticated federation route.

A decorator rather than a middleware so that a route states in its own definition that it
needs a signed request, and receives the verified origin as an argument it cannot forget to
check. Failures become Matrix errors: 401 ``M_UNAUTHORIZED`` for anything wrong with the
signature, its key or its addressing, 400 ``M_NOT_JSON`` for a body that is not JSON, 413
``M_TOO_LARGE`` for a body over the route's limit.

The order is what keeps unauthenticated senders cheap (see ``federation/inbound_auth.py``):
the declared length against the limit, then the header and the origin's key, and only then
the body, read up to the limit. Every route takes bodies up to ``limits.max_request_body_bytes``
(``BODY_LIMIT``); `PUT /send/{txnId}` alone takes a full transaction
(``@authenticated_transaction``).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from aiohttp import web

from federation.api.context import AUTHENTICATOR, BODY_LIMIT
from federation.inbound_auth import AuthenticatedRequest, RequestBodyError
from federation.request_auth import RequestAuthError
from federation.transactions import MAX_TRANSACTION_BYTES
from homeserver.errors import MatrixError, too_large

AuthenticatedHandler = Callable[
    [web.Request, AuthenticatedRequest], Awaitable[web.StreamResponse]
]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def authenticated(handler: AuthenticatedHandler) -> Handler:
    """Wrap ``handler`` so that it runs only for a request whose X-Matrix signature verifies."""
    return _authenticated(handler, lambda app: app[BODY_LIMIT])


def authenticated_transaction(handler: AuthenticatedHandler) -> Handler:
    """`@authenticated` for `PUT /send/{txnId}`, whose body may be a full transaction."""
    return _authenticated(handler, lambda app: max(app[BODY_LIMIT], MAX_TRANSACTION_BYTES))


def _authenticated(
    handler: AuthenticatedHandler, body_limit: Callable[[web.Application], int]
) -> Handler:
    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        limit = body_limit(request.app)
        _refuse_declared_length(request, limit)
        authenticator = request.app[AUTHENTICATOR]
        try:
            header = await authenticator.check_header(request.headers.getall("Authorization", []))
            declared = request.content_length if request.body_exists else 0
            async with authenticator.reading(declared):
                body = await _read_body(request, limit)
                auth = await authenticator.check_body(
                    header, request.method, request.raw_path, body
                )
        except RequestAuthError as e:
            raise MatrixError(401, "M_UNAUTHORIZED", str(e)) from None
        except RequestBodyError as e:
            raise MatrixError(400, "M_NOT_JSON", f"Content not JSON: {e}") from None
        return await handler(request, auth)

    return wrapper


def _refuse_declared_length(request: web.Request, limit: int) -> None:
    """413 before anything else when the Content-Length says the body is over ``limit``."""
    if request.content_length is not None and request.content_length > limit:
        raise too_large("Request body is too large")


async def _read_body(request: web.Request, limit: int) -> bytes:
    """The body, read until it ends or passes ``limit`` (a chunked body declares no length)."""
    body = bytearray()
    async for chunk in request.content.iter_any():
        body.extend(chunk)
        if len(body) > limit:
            raise too_large("Request body is too large")
    return bytes(body)
