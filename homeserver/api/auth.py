"""Resolving the access token of a request into a Requester."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.context import ACCOUNTS
from homeserver.errors import MatrixError
from homeserver.services.requester import Requester


def access_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise MatrixError(401, "M_MISSING_TOKEN", "Malformed Authorization header")
        return token.strip()
    return request.query.get("access_token")


async def require_requester(request: web.Request) -> Requester:
    """The authenticated user, or 401 M_MISSING_TOKEN / M_UNKNOWN_TOKEN."""
    token = access_token(request)
    if token is None:
        raise MatrixError(401, "M_MISSING_TOKEN", "Missing access token")
    return await request.app[ACCOUNTS].authenticate(token, request.remote or "")
