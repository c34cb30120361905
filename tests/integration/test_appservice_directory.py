"""The room directories of application services' networks (client-server-api "Application
service room directory" and /publicRooms' `third_party_instance_id` / `include_all_networks`),
with loopback bridges that declare their networks in `/thirdparty/protocols`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from tests.appservice_peer import LoopbackAppService
from tests.conftest import MakeServer
from tests.helpers import MatrixApi, User
from tests.network_bridges import NetworkBridge

pytestmark = pytest.mark.usefixtures("no_server_errors")


def list_path(network_id: str, room_id: str) -> str:
    return f"directory/list/appservice/{quote(network_id, safe='')}/{quote(room_id)}"


@dataclass
class Setup:
    api: MatrixApi
    alice: User
    irc: NetworkBridge  # networks libera and oftc
    slack: NetworkBridge  # network libera too: the same name in another bridge

    async def listed(self, via: str = "POST", **options: Any) -> list[str]:
        """The room IDs of /publicRooms with these options."""
        if via == "POST":
            body = await self.api.ok("POST", "publicRooms", json=options, token=self.alice.token)
        else:
            params = {k: str(v).lower() if isinstance(v, bool) else v for k, v in options.items()}
            body = await self.api.ok("GET", "publicRooms", params=params)
        return sorted(room["room_id"] for room in body["chunk"])

    async def publish(self, bridge: NetworkBridge, network: str, room: str, visibility: str
                      ) -> None:
        await self.api.ok("PUT", list_path(network, room), json={"visibility": visibility},
                          token=bridge.as_token)


def protocol(*networks: str) -> dict[str, Any]:
    return {"instances": [{"network_id": n, "desc": n, "fields": {}} for n in networks]}


@pytest.fixture
async def setup(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, tmp_path: Path
) -> AsyncIterator[Setup]:
    irc = NetworkBridge(LoopbackAppService("irc", hs_token="hs-irc"), ("irc",),
                        answers={"thirdparty/protocol/irc": protocol("libera", "oftc")})
    slack = NetworkBridge(LoopbackAppService("slack", hs_token="hs-slack"), ("slack",),
                          answers={"thirdparty/protocol/slack": protocol("libera")})
    for b in (irc, slack):
        await b.up()
    server = await make_homeserver({"appservices.registration_files": [
        irc.write_registration(tmp_path), slack.write_registration(tmp_path),
    ]})
    api = MatrixApi(server.url, http)
    yield Setup(api, await api.register("alice"), irc, slack)
    for b in (irc, slack):
        await b.down()


async def test_a_bridge_lists_rooms_under_its_own_networks(setup: Setup) -> None:
    api, alice = setup.api, setup.alice
    own = await api.create_room(alice, visibility="public")
    portal = await api.create_room(alice)
    other = await api.create_room(alice)
    await setup.publish(setup.irc, "libera", portal, "public")
    await setup.publish(setup.irc, "libera", portal, "public")  # again: no change
    await setup.publish(setup.slack, "libera", other, "public")

    # The instance IDs clients get from /thirdparty/protocols name the lists.
    protocols = await api.ok("GET", "thirdparty/protocols", token=alice.token)
    libera, oftc = (i["instance_id"] for i in protocols["irc"]["instances"])
    for via in ("POST", "GET"):
        assert await setup.listed(via) == [own], via
        assert await setup.listed(via, third_party_instance_id=libera) == [portal], via
        assert await setup.listed(via, third_party_instance_id=oftc) == [], via
        assert await setup.listed(via, include_all_networks=True) == sorted([own, portal, other])
    assert await setup.listed(third_party_instance_id="slack|libera") == [other]
    assert await setup.listed(third_party_instance_id="nobody|libera") == []
    assert await setup.listed(third_party_instance_id="libera") == []

    # Taken out again ("private"): only from that network's list.
    await setup.publish(setup.irc, "libera", portal, "private")
    await setup.publish(setup.irc, "oftc", own, "private")  # was never listed there: fine
    assert await setup.listed(third_party_instance_id=libera) == []
    assert await setup.listed(include_all_networks=True) == sorted([own, other])
    assert await api.ok("GET", f"directory/list/room/{quote(portal)}") == {"visibility": "private"}


async def test_only_an_application_service_may_list_and_bad_requests_are_refused(
    setup: Setup,
) -> None:
    api, alice = setup.api, setup.alice
    room = await api.create_room(alice)
    irc = setup.irc.as_token
    cases: list[tuple[str, str | None, Any, tuple[int, str]]] = [
        (list_path("libera", room), alice.token, {"visibility": "public"}, (403, "M_FORBIDDEN")),
        (list_path("libera", room), None, {"visibility": "public"}, (401, "M_MISSING_TOKEN")),
        (list_path("libera", room), "nonsense", {"visibility": "public"},
         (401, "M_UNKNOWN_TOKEN")),
        (list_path("libera", room), irc, {}, (400, "M_MISSING_PARAM")),
        (list_path("libera", room), irc, {"visibility": "hidden"}, (400, "M_INVALID_PARAM")),
        (list_path("libera", room), irc, {"visibility": 1}, (400, "M_BAD_JSON")),
        (list_path("libera", room), irc, [], (400, "M_BAD_JSON")),
        (list_path("libera", "not-a-room"), irc, {"visibility": "public"},
         (400, "M_INVALID_PARAM")),
        (list_path("libera", "!unknown:localhost"), irc, {"visibility": "public"},
         (404, "M_NOT_FOUND")),
        (list_path("x" * 256, room), irc, {"visibility": "public"}, (400, "M_INVALID_PARAM")),
    ]
    for path, token, body, expected in cases:
        status, answer = await api.request("PUT", path, json=body, token=token)
        assert (status, answer["errcode"]) == expected, (path, token, body)
    assert await setup.listed(include_all_networks=True) == []

    status, answer = await api.request(
        "POST", "publicRooms", token=alice.token,
        json={"include_all_networks": True, "third_party_instance_id": "irc|libera"},
    )
    assert (status, answer["errcode"]) == (400, "M_INVALID_PARAM")
    status, answer = await api.request(
        "GET", "publicRooms", params={"include_all_networks": "yes"}
    )
    assert (status, answer["errcode"]) == (400, "M_INVALID_PARAM")


async def test_a_bridge_no_longer_registered_lists_nothing(
    setup: Setup, make_homeserver: MakeServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    api, alice = setup.api, setup.alice
    portal = await api.create_room(alice)
    other = await api.create_room(alice)
    await setup.publish(setup.irc, "libera", portal, "public")
    await setup.publish(setup.slack, "libera", other, "public")
    assert await setup.listed(include_all_networks=True) == sorted([portal, other])

    # A server on the same database whose operator removed the IRC bridge's registration.
    restarted = await make_homeserver(
        {"appservices.registration_files": [setup.slack.write_registration(tmp_path)]}
    )
    setup.api = MatrixApi(restarted.url, http)
    assert await setup.listed(include_all_networks=True) == [other]
    assert await setup.listed(third_party_instance_id="slack|libera") == [other]
