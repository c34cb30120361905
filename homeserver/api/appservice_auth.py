"""The application service a request comes from, for the endpoints only an application service
may call: the spec has them authenticated by the service's `as_token` itself, whoever the
request may act for (`?user_id=`), which must be one of its users (unlike
`auth.require_as_token`, for registering and logging in those users)."""

from __future__ import annotations

from aiohttp import web

from homeserver.api.auth import require_requester
from homeserver.errors import forbidden
from homeserver.protocol.appservice import Registration


async def require_appservice(request: web.Request) -> Registration:
    """The service whose `as_token` the request carries; else 401 for a missing or unknown
    token, as anywhere, and 403 M_FORBIDDEN for a user's."""
    requester = await require_requester(request)
    if requester.appservice is None:
        raise forbidden("Only an application service may do this (with its as_token)")
    return requester.appservice
