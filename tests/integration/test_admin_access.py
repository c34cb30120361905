"""Who may use the admin API: a server admin; anyone else 403, no token 401 (Synapse's
answers, which the operators' tools expect)."""

from __future__ import annotations

import pytest

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
