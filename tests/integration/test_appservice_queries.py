"""The server asking application services (application-service-api "Querying"): an unknown
local user in a namespace looked up or invited, an unknown local alias in a namespace resolved
or joined; and `POST /appservice/{appserviceId}/ping` ("Pinging") with each of its errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from tests.appservice_peer import LoopbackAppService
from tests.conftest import MakeServer, RunningServer
from tests.helpers import MatrixApi, User

pytestmark = pytest.mark.usefixtures("no_server_errors")

PING = "/_matrix/client/v1/appservice/{}/ping"


def namespaces() -> dict[str, Any]:
    return {
        "users": [{"regex": "@_q_.*:localhost", "exclusive": False}],
        "aliases": [{"regex": "#_q_.*:localhost", "exclusive": False}],
        "rooms": [],
    }


async def start(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, tmp_path: Path,
    *services: LoopbackAppService, **overrides: Any,
) -> tuple[RunningServer, MatrixApi]:
    """A server with `services` registered (and up), and a client of it."""
    paths = []
    for service in services:
        await service.up()
        paths.append(service.write_registration(tmp_path, namespaces=namespaces(), **overrides))
    server = await make_homeserver({"appservices.registration_files": paths})
    return server, MatrixApi(server.url, http)


async def test_an_unknown_user_in_a_namespace_is_asked_of_the_appservice(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    bridge = LoopbackAppService("users-q")
    _, api = await start(make_homeserver, http, tmp_path, bridge)

    async def create_ghost(user_id: str) -> int:
        if user_id != "@_q_ghost:localhost":
            return 404
        await api.register("_q_ghost")  # what a bridge does before it answers 200
        return 200

    bridge.on_user_query = create_ghost
    # The appservice makes the user exist: the lookup finds it.
    assert (await api.request("GET", "profile/@_q_ghost:localhost"))[0] == 200
    assert bridge.user_queries == ["@_q_ghost:localhost"]
    # It knows of no such user: still 404. Outside every namespace it is not asked.
    assert (await api.request("GET", "profile/@_q_nobody:localhost"))[0] == 404
    assert (await api.request("GET", "profile/@stranger:localhost"))[0] == 404
    assert bridge.user_queries == ["@_q_ghost:localhost", "@_q_nobody:localhost"]
    # An invite of an unknown namespaced user asks too.
    alice = await api.register("alice")
    room = await api.create_room(alice)
    await api.ok(
        "POST", f"rooms/{quote(room)}/invite", json={"user_id": "@_q_invitee:localhost"},
        token=alice.token,
    )
    assert bridge.user_queries[-1] == "@_q_invitee:localhost"


async def test_an_unknown_alias_in_a_namespace_is_asked_of_the_appservice(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    bridge = LoopbackAppService("aliases-q")
    _, api = await start(make_homeserver, http, tmp_path, bridge)
    portal_owner = await api.register("portal")

    async def create_portal(alias: str) -> int:
        if not alias.startswith("#_q_portal"):
            return 404
        # The bridge creates the portal room with the alias before it answers 200.
        localpart = alias[1:].split(":")[0]
        await api.create_room(portal_owner, room_alias_name=localpart, preset="public_chat")
        return 200

    bridge.on_alias_query = create_portal
    found = await api.ok("GET", f"directory/room/{quote('#_q_portal1:localhost')}")
    assert found["room_id"].startswith("!")
    assert bridge.alias_queries == ["#_q_portal1:localhost"]
    # A join by an alias nobody created yet: asked, created, joined.
    visitor: User = await api.register("visitor")
    joined = await api.ok(
        "POST", f"join/{quote('#_q_portal2:localhost')}", json={}, token=visitor.token
    )
    assert joined["room_id"].startswith("!")
    assert bridge.alias_queries[-1] == "#_q_portal2:localhost"
    # Refused by the appservice: 404; outside the namespace: not asked.
    status, _ = await api.request("GET", f"directory/room/{quote('#_q_nothing:localhost')}")
    assert status == 404
    status, _ = await api.request("GET", f"directory/room/{quote('#plain:localhost')}")
    assert status == 404
    assert bridge.alias_queries == [
        "#_q_portal1:localhost", "#_q_portal2:localhost", "#_q_nothing:localhost"
    ]


async def test_ping_reaches_the_appservice_and_reports_each_failure(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    bridge = LoopbackAppService("pinged", hs_token="hs-ping")
    other = LoopbackAppService("other", hs_token="hs-other")
    server, api = await start(make_homeserver, http, tmp_path, bridge, other)
    path = PING.format("pinged")

    body = await api.ok("POST", path, json={"transaction_id": "meow"}, token=bridge.as_token)
    assert isinstance(body["duration_ms"], int) and body["duration_ms"] >= 0
    assert bridge.pings == [({"transaction_id": "meow"}, "Bearer hs-ping")]
    # Another appservice's ID, or a token that is not an appservice's: 403.
    alice = await api.register("alice")
    for token in (other.as_token, alice.token):
        status, error = await api.request("POST", path, json={}, token=token)
        assert (status, error["errcode"]) == (403, "M_FORBIDDEN")
    status, error = await api.request("POST", path, json={"transaction_id": 5},
                                      token=bridge.as_token)
    assert (status, error["errcode"]) == (400, "M_INVALID_PARAM")
    # The appservice refuses our hs_token: its status and body come back.
    bridge.ping_status = 403
    status, error = await api.request("POST", path, json={}, token=bridge.as_token)
    assert (status, error["errcode"], error["status"]) == (502, "M_BAD_STATUS", 403)
    assert "M_FORBIDDEN" in error["body"]
    # It hangs: a timeout (made short here).
    bridge.ping_status, bridge.ping_hangs = 200, True
    assert server.hs.appservice_sender is not None
    server.hs.appservice_sender.client.query_timeout_s = 0.2
    status, error = await api.request("POST", path, json={}, token=bridge.as_token)
    assert (status, error["errcode"]) == (504, "M_CONNECTION_TIMEOUT")
    # It is gone.
    await bridge.down()
    status, error = await api.request("POST", path, json={}, token=bridge.as_token)
    assert (status, error["errcode"]) == (502, "M_CONNECTION_FAILED")


async def test_ping_of_an_appservice_without_a_url_is_m_url_not_set(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    silent = LoopbackAppService("silent")
    _, api = await start(make_homeserver, http, tmp_path, silent, url=None)
    status, error = await api.request(
        "POST", PING.format("silent"), json={}, token=silent.as_token
    )
    assert (status, error["errcode"]) == (400, "M_URL_NOT_SET")
    assert silent.pings == []
