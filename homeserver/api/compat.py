"""Compatibility paths: the `r0` prefix for every endpoint that existed in r0, and the
`unstable` prefix for the endpoints the spec took over from there.

Older clients (those packaged in Debian, test suites, bots) still call `/_matrix/client/r0/...`
and `/_matrix/media/r0/...`; r0.6.1 became v1.0 and its paths were renamed to v3 unchanged, so
an r0 path is its v3 route under another name. Endpoints the spec added in v1.1 or later never
had an r0 path and get none here (tests/integration/test_compat_paths.py checks this list
against the `x-addedInMatrixVersion` of the spec's OpenAPI).
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

V3 = "/_matrix/client/v3/"
R0 = "/_matrix/client/r0/"
UNSTABLE = "/_matrix/client/unstable/"
MEDIA_V3 = "/_matrix/media/v3/"
MEDIA_R0 = "/_matrix/media/r0/"

# v3 paths (after the prefix) the spec added after v1.0; a trailing "/" covers a subtree, and
# a leading method names one operation of a path that r0 had.
ADDED_AFTER_R0 = (
    "keys/device_signing/upload", "keys/signatures/upload",  # v1.1, cross-signing
    "room_keys/",  # v1.1, key backup
    "knock/",  # v1.1
    "login/sso/redirect", "login/sso/redirect/{idpId}",  # v1.1 in the OpenAPI
    "refresh",  # v1.3
    "rooms/{roomId}/report",  # v1.13 (reporting an event is r0: .../report/{eventId})
    "users/{userId}/report",  # v1.14
    "DELETE profile/{userId}/{keyName}",  # v1.16
)
MEDIA_ADDED_AFTER_R0 = ("upload/{serverName}/{mediaId}",)  # v1.7, asynchronous upload
# Cross-signing was served under `unstable` before v1.1 (MSC1756), and clients of that time
# still upload keys there.
FROM_UNSTABLE = ("keys/device_signing/upload", "keys/signatures/upload")


def _listed(method: str, rest: str, paths: tuple[str, ...]) -> bool:
    for entry in paths:
        only, _, path = entry.rpartition(" ")
        if only and only != method:
            continue
        if rest == path or (path.endswith("/") and rest.startswith(path)):
            return True
    return False


def compat_routes(routes: Iterable[web.AbstractRouteDef]) -> list[web.RouteDef]:
    """The r0 and unstable aliases of `routes` (the v3 table), same handlers."""
    aliases = []
    for route in routes:
        if not isinstance(route, web.RouteDef):
            continue
        path = route.path
        if path.startswith(V3):
            rest = path.removeprefix(V3)
            if not _listed(route.method, rest, ADDED_AFTER_R0):
                aliases.append(web.RouteDef(route.method, R0 + rest, route.handler, route.kwargs))
            if _listed(route.method, rest, FROM_UNSTABLE):
                aliases.append(
                    web.RouteDef(route.method, UNSTABLE + rest, route.handler, route.kwargs)
                )
        elif path.startswith(MEDIA_V3):
            rest = path.removeprefix(MEDIA_V3)
            if not _listed(route.method, rest, MEDIA_ADDED_AFTER_R0):
                aliases.append(
                    web.RouteDef(route.method, MEDIA_R0 + rest, route.handler, route.kwargs)
                )
    return aliases
