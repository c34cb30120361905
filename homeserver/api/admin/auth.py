"""Who may use the admin API: a user whose account carries the server-admin flag
(`moot register-user --admin`, shared-secret registration with `admin: true`, or
`PUT /_synapse/admin/v1/users/{userId}/admin`)."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from homeserver.api.auth import require_requester
from homeserver.errors import MatrixError
from homeserver.services.requester import Requester

# Operators' audit trail: one line per change an admin makes, naming the admin.
audit = logging.getLogger("moot.admin")

ADMIN = "/_synapse/admin"


async def require_admin(request: web.Request) -> Requester:
    """The requester if they are a server admin: 401 without a valid token (as every
    authenticated route), 403 M_FORBIDDEN for anyone else (Synapse's answer too)."""
    requester = await require_requester(request)
    if not requester.is_admin:
        raise MatrixError(403, "M_FORBIDDEN", "You are not a server admin")
    return requester


def log_admin_action(admin: Requester, action: str, **details: Any) -> None:
    """Record a change made through the admin API: which admin, what, on what."""
    fields = " ".join(f"{key}={value!r}" for key, value in sorted(details.items()))
    audit.info("admin %s: %s %s", admin.user_id, action, fields)
