"""Who may use the admin API: a server admin; anyone else 403, no token 401 (Synapse's
answers, which the operators' tools expect)."""

from __future__ import annotations

import re

import pytest

from homeserver.api.admin import admin_routes
from tests.admin_api import ADMIN, admin_ok, make_admin
from tests.conftest import RunningServer
from tests.helpers import MatrixApi

pytestmark = pytest.mark.usefixtures("no_server_errors")


async def test_server_version_for_admins_only(homeserver: RunningServer, api: MatrixApi) -> None:
    admin = await make_admin(homeserver, api)
    body = await admin_ok(api, admin, "GET", "/v1/server_version")
    assert isinstance(body["server_version"], str) and body["server_version"]

    alice = await api.register("alice")
    status, body = await api.request("GET", ADMIN + "/v1/server_version", token=alice.token)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await api.request("GET", ADMIN + "/v1/server_version")
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")


async def test_every_admin_route_checks_the_admin_before_the_request(
    homeserver: RunningServer, api: MatrixApi
) -> None:
    """Every admin route (the route table, so a new one is covered) answers 401 without a
    token and 403 to a non-admin, however malformed its path, query and body: nothing of the
    request is looked at before the caller is known to be an admin. Shared-secret
    registration alone takes no token (its MAC is the credential)."""
    alice = await api.register("alice")
    junk = {"deactivated": "junk", "limit": "-1", "from": "x", "dir": "sideways",
            "order_by": "nothing", "valid": "junk", "before_ts": "x", "admins": "junk"}
    for route in admin_routes():
        path = getattr(route, "path", None)
        if not isinstance(path, str) or path == ADMIN + "/v1/register":
            continue
        url = re.sub(r"{\w+}", "x", path)
        for token, expected in ((None, 401), (alice.token, 403)):
            status, body = await api.request(
                route.method, url, token=token, params=junk, raw=b"not json"
            )
            assert status == expected, (route.method, path, status, body)
