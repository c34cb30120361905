"""The endpoints a guest account may use (spec "Guest Access", "Client behaviour"); anything
else authenticated answers 403 M_GUEST_ACCESS_FORBIDDEN to a guest's access token.

The spec's list: reading rooms and media, `/sync` and `/events`, joining, leaving and
sending (events, state, to-device), its own display name, devices, whoami and the three key
endpoints. Besides those, as Synapse allows, a guest may create and read filters (a `/sync`
client needs one), read `/capabilities` and log out. Which profile field a guest may change is
the profile service's to check (only `displayname`).

Routes are matched by method and path template, whatever the prefix (`v3`, `r0`, `v1`,
media) and the names of the path's parameters.
"""

from __future__ import annotations

import re

from aiohttp import web

_PREFIX = re.compile(r"^/_matrix/(?:client|media)/(?:v1|v3|r0|unstable)/")
_PARAMETER = re.compile(r"\{[^}]*\}")

GUEST_ROUTES = frozenset({
    # Retrieving events and media.
    ("GET", "rooms/{}/state"), ("GET", "rooms/{}/state/{}"), ("GET", "rooms/{}/state/{}/"),
    ("GET", "rooms/{}/state/{}/{}"), ("GET", "rooms/{}/context/{}"),
    ("GET", "rooms/{}/event/{}"), ("GET", "rooms/{}/messages"), ("GET", "rooms/{}/members"),
    ("GET", "rooms/{}/initialSync"), ("GET", "sync"), ("GET", "events"),
    ("GET", "media/download/{}/{}"), ("GET", "media/download/{}/{}/{}"),
    ("GET", "media/thumbnail/{}/{}"),
    # Sending events.
    ("POST", "rooms/{}/join"), ("POST", "join/{}"), ("POST", "rooms/{}/leave"),
    ("PUT", "rooms/{}/send/{}/{}"), ("PUT", "rooms/{}/state/{}"), ("PUT", "rooms/{}/state/{}/"),
    ("PUT", "rooms/{}/state/{}/{}"), ("PUT", "sendToDevice/{}/{}"),
    # Account maintenance.
    ("PUT", "profile/{}/{}"), ("DELETE", "profile/{}/{}"), ("GET", "devices"),
    ("GET", "devices/{}"), ("PUT", "devices/{}"), ("GET", "account/whoami"),
    ("POST", "logout"), ("POST", "user/{}/filter"), ("GET", "user/{}/filter/{}"),
    ("GET", "capabilities"),
    # End-to-end encryption.
    ("POST", "keys/upload"), ("POST", "keys/query"), ("POST", "keys/claim"),
})


def route_template(path: str) -> str:
    """A route's path as `GUEST_ROUTES` names it: no prefix, parameters as `{}`."""
    return _PARAMETER.sub("{}", _PREFIX.sub("", path))


def guest_may_use(request: web.Request) -> bool:
    resource = request.match_info.route.resource
    path = resource.canonical if resource is not None else request.path
    return (request.method, route_template(path)) in GUEST_ROUTES
