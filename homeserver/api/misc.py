"""Discovery: `/versions`, `/.well-known/matrix/support` and `/capabilities` (the other
`.well-known` files: api/well_known.py)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from homeserver.api.auth import require_requester
from homeserver.api.context import CONFIG
from homeserver.api.http import json_response
from homeserver.errors import not_found
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS

routes = web.RouteTableDef()

# Only versions every Client-Server endpoint of which is served, up to the first one that
# isn't (v1.18 adds the admin suspend/lock endpoints), as tests/integration/test_versions.py
# derives from the routes; r0.x are what v1.0 renamed.
SPEC_VERSIONS = [
    "r0.0.1", "r0.1.0", "r0.2.0", "r0.3.0", "r0.4.0", "r0.5.0", "r0.6.0", "r0.6.1",
    *(f"v1.{minor}" for minor in range(1, 18)),
]


# Simplified Sliding Sync (MSC4186), which Element X requires: api/sliding_sync.py.
UNSTABLE_FEATURES = {"org.matrix.simplified_msc3575": True}


@routes.get("/_matrix/client/versions")
async def versions(request: web.Request) -> web.Response:
    return json_response({"versions": SPEC_VERSIONS, "unstable_features": UNSTABLE_FEATURES})


@routes.get("/.well-known/matrix/support")
async def well_known_support(request: web.Request) -> web.Response:
    """No support contacts are configured: the spec's 404 for "no server support information
    available"."""
    raise not_found("No server support information is available")


@routes.get("/_matrix/client/v3/capabilities")
async def capabilities(request: web.Request) -> web.Response:
    requester = await require_requester(request)
    config = request.app[CONFIG]
    # A guest may change only its display name (spec "Guest Access").
    profile_fields: dict[str, Any] = (
        {"enabled": True, "allowed": ["displayname"]} if requester.is_guest
        else {"enabled": True}
    )
    return json_response({
        "capabilities": {
            "m.room_versions": {
                "default": config.rooms.default_room_version,
                "available": {v: "stable" for v in KNOWN_ROOM_VERSIONS},
            },
            "m.change_password": {"enabled": True},
            # Profile fields are editable (see profile.py); third-party IDs are not kept.
            "m.profile_fields": profile_fields,
            "m.set_displayname": {"enabled": True},
            "m.set_avatar_url": {"enabled": not requester.is_guest},
            "m.3pid_changes": {"enabled": False},
        }
    })
