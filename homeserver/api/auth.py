"""Resolving the access token of a request into a Requester.

The middleware resolves a request's token once, before its route runs (`is_authenticated`), so
that every request not authenticated by a valid token — no token, or a malformed, unknown or
expired one — counts against its address's anonymous rate limit, whatever route it names.
The outcome is kept on the request, and `require_requester` answers from it.
`require_writer` also limits, per user, the writes of per-user data (`rate_limits.user_writes`).
"""

from __future__ import annotations

from aiohttp import web

from homeserver.api.client_address import client_address
from homeserver.api.context import ACCOUNTS, APPSERVICES, RATELIMITER
from homeserver.api.guests import guest_may_use
from homeserver.errors import MatrixError, unknown_token
from homeserver.protocol.appservice import Registration
from homeserver.services.requester import Requester

# Request-scoped: the Requester or the MatrixError the request's access token resolved to.
_RESOLVED = web.RequestKey[Requester | MatrixError]("moot_auth_resolved")


def access_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise MatrixError(401, "M_MISSING_TOKEN", "Malformed Authorization header")
        return token.strip()
    return request.query.get("access_token")


async def _resolve(request: web.Request) -> Requester:
    token = access_token(request)
    if token is None:
        raise MatrixError(401, "M_MISSING_TOKEN", "Missing access token")
    query = request.query
    return await request.app[ACCOUNTS].authenticate(
        token, client_address(request), as_user=query.get("user_id"),
        as_device=query.get("device_id", query.get("org.matrix.msc3202.device_id")),
        user_agent=request.headers.get("User-Agent"),
    )


async def is_authenticated(request: web.Request) -> bool:
    """Whether the request carries a valid access token (resolving it once per request).
    An application service's as_token is valid even where the user it names is not (403): it
    is not an anonymous request (mautrix registers each new user with `?user_id=` naming it)."""
    try:
        request[_RESOLVED] = await _resolve(request)
    except MatrixError as e:
        request[_RESOLVED] = e
        return e.status != 401
    return True


def require_as_token(request: web.Request) -> Registration:
    """The application service whose as_token the request carries, whatever user it names
    (registration and login of its users): 401 M_MISSING_TOKEN without a token,
    M_UNKNOWN_TOKEN with another (spec "Server admin style permissions")."""
    token = access_token(request)
    if token is None:
        raise MatrixError(401, "M_MISSING_TOKEN", "Missing access token")
    registration = request.app[APPSERVICES].by_as_token(token)
    if registration is None:
        raise unknown_token("This needs an application service's as_token")
    return registration


def authenticated_user(request: web.Request) -> str | None:
    """The user whose valid access token the request carried, if it was resolved (for the
    access log: it never resolves a token itself)."""
    resolved = request.get(_RESOLVED)
    return resolved.user_id if isinstance(resolved, Requester) else None


async def require_requester(request: web.Request) -> Requester:
    """The authenticated user, or 401 M_MISSING_TOKEN / M_UNKNOWN_TOKEN; a guest only on the
    routes guests may use (else 403 M_GUEST_ACCESS_FORBIDDEN, see guests.py)."""
    resolved = request.get(_RESOLVED)
    if resolved is None:
        resolved = await _resolve(request)
    if isinstance(resolved, MatrixError):
        raise resolved
    if resolved.is_guest and not guest_may_use(request):
        raise MatrixError(403, "M_GUEST_ACCESS_FORBIDDEN", "Guest accounts may not do this")
    return resolved


async def require_writer(request: web.Request) -> Requester:
    """`require_requester` for a write of per-user data (account data, tags, filters, aliases,
    typing, keys, key backup): 429 M_LIMIT_EXCEEDED past the user's `user_writes` budget."""
    requester = await require_requester(request)
    limiter = request.app.get(RATELIMITER)
    if limiter is not None:
        limiter.check_user("user_writes", requester)
    return requester
