"""`@authenticated`: the X-Matrix check in front of every authenticated federation route.

A decorator rather than a middleware so that a route states in its own definition that it
needs a signed request, and receives the verified origin as an argument it cannot forget to
check. Failures become Matrix errors: 401 ``M_UNAUTHORIZED`` for anything wrong with the
signature, its key or its addressing, 400 ``M_NOT_JSON`` for a body that is not JSON.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from aiohttp import web

from federation.api.context import AUTHENTICATOR
from federation.inbound_auth import AuthenticatedRequest, RequestBodyError
from federation.request_auth import RequestAuthError
from homeserver.errors import MatrixError, too_large

AuthenticatedHandler = Callable[[web.Request, AuthenticatedRequest], Awaitable[web.Response]]
Handler = Callable[[web.Request], Awaitable[web.Response]]


def authenticated(handler: AuthenticatedHandler) -> Handler:
    """Wrap ``handler`` so that it runs only for a request whose X-Matrix signature verifies."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.Response:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise too_large("Request body is too large") from None
        try:
            auth = await request.app[AUTHENTICATOR].authenticate(
                request.method, request.raw_path,
                request.headers.getall("Authorization", []), body,
            )
        except RequestAuthError as e:
            raise MatrixError(401, "M_UNAUTHORIZED", str(e)) from None
        except RequestBodyError as e:
            raise MatrixError(400, "M_NOT_JSON", f"Content not JSON: {e}") from None
        return await handler(request, auth)

    return wrapper
