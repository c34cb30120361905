"""Third-party networks (client-server-api "Third-party Networks") answered by loopback
application services that declare `protocols`: the protocols merged across bridges as Synapse
merges them, lookups passed on with the client's fields, reverse lookups asked of the bridge
holding the ID, and a bridge that is down, hangs or answers nonsense left out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from tests.appservice_peer import LoopbackAppService
from tests.conftest import MakeServer
from tests.helpers import MatrixApi, User
from tests.network_bridges import NetworkBridge, Redirect

pytestmark = pytest.mark.usefixtures("no_server_errors")

Start = Callable[..., Awaitable[tuple[MatrixApi, User]]]


def irc(network_id: str | None, desc: str) -> dict[str, Any]:
    """A protocol description as an IRC bridge gives it, with one instance."""
    instance: dict[str, Any] = {"desc": desc, "fields": {"network": desc.lower()}}
    if network_id is not None:
        instance["network_id"] = network_id
    return {
        "user_fields": ["network", "nickname"], "location_fields": ["network", "channel"],
        "icon": "mxc://example.org/irc", "field_types": {
            "network": {"regexp": "[a-z.]+", "placeholder": "irc.example.org"},
            "nickname": {"regexp": "[^\\s]+", "placeholder": "nick"},
            "channel": {"regexp": "#[^\\s]+", "placeholder": "#channel"},
        },
        "instances": [instance],
    }


def bridge(
    service_id: str, *protocols: str, prefix: str | None = None, **answers: Any
) -> NetworkBridge:
    """A bridge answering `answers` (keys are paths under thirdparty/, `/` written `__`),
    holding the users and aliases `prefix`* exclusively."""
    registration = {} if prefix is None else {"namespaces": {
        "users": [{"regex": f"@{prefix}.*:localhost", "exclusive": True}],
        "aliases": [{"regex": f"#{prefix}.*:localhost", "exclusive": True}],
    }}
    return NetworkBridge(
        LoopbackAppService(service_id, hs_token=f"hs-{service_id}"), protocols,
        registration=registration,
        answers={"thirdparty/" + k.replace("__", "/"): v for k, v in answers.items()},
    )


@pytest.fixture
async def start(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, tmp_path: Path
) -> AsyncIterator[Start]:
    """Bring the bridges up, register them (in order) and start Moot: its client API and a
    user."""
    running: list[NetworkBridge] = []

    async def start(*bridges: NetworkBridge) -> tuple[MatrixApi, User]:
        files = []
        for b in bridges:
            await b.up()
            running.append(b)
            files.append(b.write_registration(tmp_path))
        server = await make_homeserver({"appservices.registration_files": files})
        api = MatrixApi(server.url, http)
        return api, await api.register("alice")

    yield start
    for b in running:
        await b.down()


async def test_protocols_merge_every_bridges_instances(start: Start) -> None:
    libera = bridge("irc-a", "irc", protocol__irc=irc("libera", "Libera"))
    oftc = bridge("irc-b", "irc", protocol__irc=irc("oftc", "OFTC"))
    gitter = bridge("gitter", "gitter", protocol__gitter={"instances": [], "icon": "mxc://g/i"})
    api, alice = await start(libera, oftc, gitter)

    protocols = await api.ok("GET", "thirdparty/protocols", token=alice.token)

    assert set(protocols) == {"irc", "gitter"}
    expected = irc("libera", "Libera")
    expected["instances"] = [
        {**irc("libera", "Libera")["instances"][0], "instance_id": "irc-a|libera"},
        {**irc("oftc", "OFTC")["instances"][0], "instance_id": "irc-b|oftc"},
    ]
    assert protocols["irc"] == expected
    assert protocols["gitter"] == {"instances": [], "icon": "mxc://g/i"}
    # Each bridge was asked with its own hs_token, as the spec has it (never in the query).
    for b in (libera, oftc):
        assert [(a.path, a.authorization, a.query) for a in b.asked] == [
            ("thirdparty/protocol/irc", f"Bearer {b.service.hs_token}", {})
        ]
    assert await api.ok("GET", "thirdparty/protocol/irc", token=alice.token) == expected


async def test_an_unknown_or_undescribed_protocol_is_not_found(start: Start) -> None:
    silent = bridge("silent", "xmpp")  # declares it, answers 404
    nonsense = bridge("nonsense", "slack", protocol__slack={"instances": "none"})
    api, alice = await start(silent, nonsense)

    for protocol in ("irc", "xmpp", "slack"):
        status, body = await api.request(
            "GET", f"thirdparty/protocol/{protocol}", token=alice.token
        )
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND"), protocol
    assert await api.ok("GET", "thirdparty/protocols", token=alice.token) == {}
    for kind in ("location", "user"):
        status, body = await api.request("GET", f"thirdparty/{kind}/irc", token=alice.token)
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND"), kind
    assert "thirdparty/protocol/xmpp" in silent.paths_asked()


async def test_a_bridge_that_is_down_hangs_or_answers_garbage_is_left_out(start: Start) -> None:
    good = bridge("good", "irc", protocol__irc=irc("libera", "Libera"))
    hanging = bridge("hanging", "irc", protocol__irc=irc("hang", "Hang"))
    hanging.hangs = True
    garbage = bridge("garbage", "irc", protocol__irc=b"{not json")
    down = bridge("down", "irc", protocol__irc=irc("down", "Down"))
    api, alice = await start(good, hanging, garbage, down)
    await down.down()

    protocols = await api.ok("GET", "thirdparty/protocols", token=alice.token)

    assert [i["instance_id"] for i in protocols["irc"]["instances"]] == ["good|libera"]
    assert hanging.paths_asked() == ["thirdparty/protocol/irc"]


async def test_a_bridge_that_redirects_is_not_followed(start: Start) -> None:
    # The request carries the hs_token: it goes to the registration's URL and nowhere else,
    # as every other request to an appservice (appservice_client.py).
    moved = bridge("moved", "irc", protocol__irc=Redirect("thirdparty/elsewhere"),
                   elsewhere=irc("libera", "Libera"))
    api, alice = await start(moved)

    assert await api.ok("GET", "thirdparty/protocols", token=alice.token) == {}
    assert moved.paths_asked() == ["thirdparty/protocol/irc"]


async def test_lookups_pass_the_fields_on_and_keep_well_formed_results(start: Start) -> None:
    location = {"alias": "#irc_libera_#matrix:localhost", "protocol": "irc",
                "fields": {"network": "libera", "channel": "#matrix"}}
    user = {"userid": "@irc_libera_nick:localhost", "protocol": "irc",
            "fields": {"network": "libera", "nickname": "nick"}}
    malformed = [{"alias": 5, "protocol": "irc", "fields": {}}, {"protocol": "irc"}, "x",
                 {"alias": "#a:b", "protocol": "irc", "fields": []}]
    a = bridge("irc-a", "irc", location__irc=[location, *malformed], user__irc=[user])
    b = bridge("irc-b", "irc", location__irc={"not": "a list"}, user__irc=[user, {"userid": 1}])
    api, alice = await start(a, b)

    found = await api.ok("GET", "thirdparty/location/irc", token=alice.token,
                         params={"network": "libera", "channel": "#matrix"})
    assert found == [location]
    assert a.asked[0].query == {"network": "libera", "channel": "#matrix"}
    assert a.asked[0].authorization == f"Bearer {a.service.hs_token}"
    found = await api.ok("GET", "thirdparty/user/irc", token=alice.token,
                         params={"nickname": "nick"})
    assert found == [user, user]
    assert b.asked[-1].path == "thirdparty/user/irc"
    assert b.asked[-1].query == {"nickname": "nick"}


async def test_reverse_lookups_ask_the_bridge_holding_the_alias_or_user(start: Start) -> None:
    location = {"alias": "#irc_x:localhost", "protocol": "irc", "fields": {"channel": "#x"}}
    user = {"userid": "@irc_x:localhost", "protocol": "irc", "fields": {"nickname": "x"}}
    holder = bridge("holder", "irc", prefix="irc_", location=[location], user=[user])
    # Answers the same, but holds other IDs: never asked about these.
    other = bridge("other", "gitter", prefix="gitter_", location=[location], user=[user])
    # Holds them too but bridges no protocol: not a bridge of third-party networks.
    plain = bridge("plain", prefix="irc_x", location=[location], user=[user])
    api, alice = await start(holder, other, plain)

    assert await api.ok("GET", "thirdparty/location", token=alice.token,
                        params={"alias": "#irc_x:localhost"}) == [location]
    assert await api.ok("GET", "thirdparty/user", token=alice.token,
                        params={"userid": "@irc_x:localhost"}) == [user]
    assert [(a.path, a.query) for a in holder.asked] == [
        ("thirdparty/location", {"alias": "#irc_x:localhost"}),
        ("thirdparty/user", {"userid": "@irc_x:localhost"}),
    ]
    # Outside every namespace no bridge is asked.
    assert await api.ok("GET", "thirdparty/user", token=alice.token,
                        params={"userid": "@someone:localhost"}) == []
    assert other.asked == [] and plain.asked == [] and len(holder.asked) == 2


async def test_lookups_refuse_bad_requests(start: Start) -> None:
    api, alice = await start(bridge("irc", "irc"))
    cases = {
        "thirdparty/location": (400, "M_MISSING_PARAM"),
        "thirdparty/user": (400, "M_MISSING_PARAM"),
        "thirdparty/location?alias=nope": (400, "M_INVALID_PARAM"),
        "thirdparty/user?userid=nope": (400, "M_INVALID_PARAM"),
    }
    for path, expected in cases.items():
        status, body = await api.request("GET", path, token=alice.token)
        assert (status, body["errcode"]) == expected, path
    for path in ("thirdparty/protocols", "thirdparty/protocol/irc", "thirdparty/user/irc",
                 f"thirdparty/location?alias={quote('#a:localhost')}"):
        status, body = await api.request("GET", path)
        assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN"), path
