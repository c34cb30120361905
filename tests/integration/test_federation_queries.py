"""The federation endpoints that need no room, between two real Moot servers over TLS.

Inbound: `query/directory`, `publicRooms`, `user/devices`, `user/keys/query` and
`user/keys/claim` answer signed requests as the spec's OpenAPI says, refuse unsigned ones (401)
and malformed ones (400, never 500). Outbound: a client of server A reads keys, one-time keys,
profiles and aliases of server B through A's own client API, and a server that is down or
hangs ends up in `failures` without holding the request up.

Most tests share one pair of servers (users and aliases are unique per test); the tests that
stop a server start their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web

from federation.client import HttpResponseError, path_segment
from homeserver.services.e2e_keys import DEFAULT_REMOTE_TIMEOUT_S
from tests.federation_helpers import StandIn, validate_ss_response
from tests.federation_peers import Peer, Peers, peer_group
from tests.helpers import MatrixApi, User, validate_response
from tests.olm_device import CrossSigningKey, OlmDevice, canonical

V1 = "/_matrix/federation/v1"


@pytest.fixture(scope="module")
async def pair(
    postgres_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Peer, Peer]]:
    async with peer_group(postgres_dsn, tmp_path_factory.mktemp("queries")) as group:
        yield await group.new("a"), await group.new("b")


async def e2e_user(peer: Peer, http: aiohttp.ClientSession, localpart: str,
                   one_time_keys: int = 1) -> tuple[OlmDevice, dict[str, Any]]:
    """A user of ``peer`` with uploaded device keys, one-time keys, a fallback key and
    cross-signing keys; returns the device and what was uploaded."""
    api = peer.api(http)
    device = OlmDevice(api, await api.register(localpart))
    uploaded = {
        "device_keys": device.device_keys(),
        "one_time_keys": device.one_time_keys(one_time_keys),
        "fallback_keys": device.fallback_key(),
    }
    await device.upload_ok(**uploaded)
    master = CrossSigningKey(device.user.user_id, "master")
    self_signing = CrossSigningKey(device.user.user_id, "self_signing")
    user_signing = CrossSigningKey(device.user.user_id, "user_signing")
    uploaded |= {
        "master_key": master.key(), "self_signing_key": self_signing.key(signed_by=master),
        "user_signing_key": user_signing.key(signed_by=master),
    }
    await api.ok("POST", "keys/device_signing/upload", token=device.user.token, json={
        k: uploaded[k] for k in ("master_key", "self_signing_key", "user_signing_key")
    })
    return device, uploaded


async def fed_error(call: Any) -> tuple[int, str | None, Any]:
    with pytest.raises(HttpResponseError) as info:
        await call
    return info.value.status, info.value.errcode, info.value.body


# --- inbound ------------------------------------------------------------------------------------

async def test_query_directory_for_local_unknown_and_foreign_aliases(
    pair: tuple[Peer, Peer], http: aiohttp.ClientSession
) -> None:
    a, b = pair
    api = b.api(http)
    owner = await api.register("dir_owner")
    room_id = await api.create_room(owner, room_alias_name="lobby")
    alias = f"#lobby:{b.name}"
    ask = a.federation.outbound.client.get_json

    answer = await ask(b.name, V1 + "/query/directory", {"room_alias": alias})
    validate_ss_response("query.yaml", "/query/directory", "GET", 200, answer)
    assert answer == {"room_id": room_id, "servers": [b.name]}

    status, errcode, body = await fed_error(
        ask(b.name, V1 + "/query/directory", {"room_alias": f"#nowhere:{b.name}"})
    )
    assert (status, errcode) == (404, "M_NOT_FOUND")
    validate_ss_response("query.yaml", "/query/directory", "GET", 404, body)
    for query, expected in [
        ({"room_alias": f"#lobby:{a.name}"}, (400, "M_INVALID_PARAM")),
        ({"room_alias": "lobby"}, (400, "M_INVALID_PARAM")),
        ({}, (400, "M_MISSING_PARAM")),
    ]:
        status, errcode, _ = await fed_error(ask(b.name, V1 + "/query/directory", query))
        assert (status, errcode) == expected, query


async def test_public_rooms_get_and_post_list_the_directory(
    pair: tuple[Peer, Peer], http: aiohttp.ClientSession
) -> None:
    a, b = pair
    api = b.api(http)
    owner = await api.register("pub_owner")
    rooms = [
        await api.create_room(owner, visibility="public", name=f"Quokka meetup {i}")
        for i in range(3)
    ]
    await api.create_room(owner, visibility="private", name="Quokka secrets")
    client = a.federation.outbound.client

    listed = await client.get_json(b.name, V1 + "/publicRooms")
    validate_ss_response("public_rooms.yaml", "/publicRooms", "GET", 200, listed)
    assert set(rooms) <= {r["room_id"] for r in listed["chunk"]}

    page = await client.get_json(b.name, V1 + "/publicRooms",
                                 {"limit": "2", "include_all_networks": "true"})
    assert len(page["chunk"]) == 2 and "next_batch" in page
    rest = await client.get_json(b.name, V1 + "/publicRooms", {"since": page["next_batch"]})
    seen = [r["room_id"] for r in page["chunk"] + rest["chunk"]]
    assert set(rooms) <= set(seen) and len(seen) == len(set(seen))

    found = await client.post_json(b.name, V1 + "/publicRooms", {
        "limit": 10, "filter": {"generic_search_term": "quokka"},
    })
    validate_ss_response("public_rooms.yaml", "/publicRooms", "POST", 200, found)
    assert sorted(r["room_id"] for r in found["chunk"]) == sorted(rooms)
    assert {r["name"] for r in found["chunk"]} == {f"Quokka meetup {i}" for i in range(3)}
    assert await client.post_json(b.name, V1 + "/publicRooms", {
        "third_party_instance_id": "irc",
    }) == {"chunk": [], "total_room_count_estimate": 0}

    for query in ({"include_all_networks": "maybe"}, {"since": "garbage"},
                  {"include_all_networks": "true", "third_party_instance_id": "irc"}):
        status, errcode, _ = await fed_error(client.get_json(b.name, V1 + "/publicRooms", query))
        assert (status, errcode) == (400, "M_INVALID_PARAM"), query


async def test_user_devices_lists_keyed_devices_and_cross_signing_keys(
    pair: tuple[Peer, Peer], http: aiohttp.ClientSession
) -> None:
    a, b = pair
    device, uploaded = await e2e_user(b, http, "dev_owner")
    user_id = device.user.user_id
    await b.api(http).ok("PUT", f"devices/{device.user.device_id}", token=device.user.token,
                         json={"display_name": "Owner's phone"})
    # A device without keys (logged in, never uploaded any) is not listed.
    await b.api(http).ok("POST", "login", json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "dev_owner"},
        "password": device.user.password,
    })
    path = f"{V1}/user/devices/{path_segment(user_id)}"

    answer = await a.federation.outbound.client.get_json(b.name, path)
    validate_ss_response("user_devices.yaml", "/user/devices/{userId}", "GET", 200, answer)
    assert answer["user_id"] == user_id and answer["stream_id"] > 0
    [listed] = answer["devices"]
    assert listed["device_id"] == device.user.device_id
    assert listed["device_display_name"] == "Owner's phone"
    assert canonical(listed["keys"]) == canonical(uploaded["device_keys"])
    assert canonical(answer["master_key"]) == canonical(uploaded["master_key"])
    assert canonical(answer["self_signing_key"]) == canonical(uploaded["self_signing_key"])
    assert "user_signing_key" not in answer

    # The position moves with the device list.
    await b.api(http).ok("PUT", f"devices/{device.user.device_id}", token=device.user.token,
                         json={"display_name": "Owner's tablet"})
    again = await a.federation.outbound.client.get_json(b.name, path)
    assert again["devices"][0]["device_display_name"] == "Owner's tablet"
    assert again["stream_id"] > answer["stream_id"]

    nobody = await a.federation.outbound.client.get_json(
        b.name, f"{V1}/user/devices/{path_segment('@nobody:' + b.name)}"
    )
    assert nobody == {"user_id": f"@nobody:{b.name}", "stream_id": 0, "devices": []}
    for foreign in (f"@dev_owner:{a.name}", "not-a-user"):
        status, errcode, _ = await fed_error(
            a.federation.outbound.client.get_json(
                b.name, f"{V1}/user/devices/{path_segment(foreign)}"
            )
        )
        assert (status, errcode) == (400, "M_INVALID_PARAM"), foreign


async def test_user_keys_query_and_claim_answer_for_local_users(
    pair: tuple[Peer, Peer], http: aiohttp.ClientSession
) -> None:
    a, b = pair
    device, uploaded = await e2e_user(b, http, "keys_owner")
    user_id, device_id = device.user.user_id, device.user.device_id
    client = a.federation.outbound.client
    stranger = f"@someone:{a.name}"

    answer = await client.post_json(b.name, V1 + "/user/keys/query", {
        "device_keys": {user_id: [], stranger: []},
    })
    validate_ss_response("user_keys.yaml", "/user/keys/query", "POST", 200, answer)
    assert set(answer) == {"device_keys", "master_keys", "self_signing_keys"}
    served = answer["device_keys"][user_id][device_id]
    assert served.pop("unsigned") == {}
    assert canonical(served) == canonical(uploaded["device_keys"])
    assert canonical(answer["master_keys"][user_id]) == canonical(uploaded["master_key"])
    assert stranger not in answer["device_keys"]  # another server's user: left out
    only_other = await client.post_json(b.name, V1 + "/user/keys/query", {
        "device_keys": {user_id: ["OTHER"]},
    })
    assert only_other["device_keys"] == {user_id: {}}

    # The one-time key first, then the fallback key, as the client API hands them out.
    wanted = {"one_time_keys": {user_id: {device_id: "signed_curve25519"}, stranger: {}}}
    claims = [await client.post_json(b.name, V1 + "/user/keys/claim", wanted) for _ in range(3)]
    for claimed in claims:
        validate_ss_response("user_keys.yaml", "/user/keys/claim", "POST", 200, claimed)
    [one_time] = uploaded["one_time_keys"].values()
    [fallback] = uploaded["fallback_keys"].values()
    keys = [next(iter(c["one_time_keys"][user_id][device_id].values())) for c in claims]
    assert canonical(keys[0]) == canonical(one_time)
    assert canonical(keys[1]) == canonical(keys[2]) == canonical(fallback)


@pytest.mark.parametrize(("path", "body", "errcode"), [
    ("/user/keys/query", [], "M_BAD_JSON"),
    ("/user/keys/query", {}, "M_MISSING_PARAM"),
    ("/user/keys/query", {"device_keys": []}, "M_BAD_JSON"),
    ("/user/keys/query", {"device_keys": {"@u:x": "all"}}, "M_BAD_JSON"),
    ("/user/keys/query", {"device_keys": {"@u:x": [1]}}, "M_BAD_JSON"),
    ("/user/keys/query", {"device_keys": {"not a user": []}}, "M_INVALID_PARAM"),
    ("/user/keys/claim", {}, "M_MISSING_PARAM"),
    ("/user/keys/claim", {"one_time_keys": {"@u:x": []}}, "M_BAD_JSON"),
    ("/user/keys/claim", {"one_time_keys": {"@u:x": {"DEV": 5}}}, "M_BAD_JSON"),
    ("/user/keys/claim", {"one_time_keys": {"nobody": {}}}, "M_INVALID_PARAM"),
    ("/publicRooms", "rooms", "M_BAD_JSON"),
    ("/publicRooms", {"limit": "ten"}, "M_BAD_JSON"),
    ("/publicRooms", {"filter": ["x"]}, "M_BAD_JSON"),
    ("/publicRooms", {"filter": {"room_types": "m.space"}}, "M_BAD_JSON"),
    ("/publicRooms", {"include_all_networks": True, "third_party_instance_id": "irc"},
     "M_INVALID_PARAM"),
])
async def test_malformed_bodies_are_400(
    pair: tuple[Peer, Peer], path: str, body: Any, errcode: str
) -> None:
    a, b = pair
    status, got, answer = await fed_error(
        a.federation.outbound.client.post_json(b.name, V1 + path, body)
    )
    assert (status, got) == (400, errcode), answer


async def test_unsigned_requests_get_401_and_version_needs_no_signature(
    pair: tuple[Peer, Peer], peer_http: aiohttp.ClientSession
) -> None:
    _, b = pair
    requests: list[tuple[str, str, Any]] = [
        ("GET", f"/query/directory?room_alias={quote('#x:' + b.name)}", None),
        ("GET", "/publicRooms", None),
        ("POST", "/publicRooms", {}),
        ("GET", f"/user/devices/{path_segment('@x:' + b.name)}", None),
        ("POST", "/user/keys/query", {"device_keys": {}}),
        ("POST", "/user/keys/claim", {"one_time_keys": {}}),
    ]
    for method, path, body in requests:
        async with peer_http.request(method, b.federation_url + V1 + path, json=body) as resp:
            answer = await resp.json()
            assert (resp.status, answer["errcode"]) == (401, "M_UNAUTHORIZED"), path
    async with peer_http.get(b.federation_url + V1 + "/version") as resp:
        version = await resp.json()
    validate_ss_response("version.yaml", "/version", "GET", 200, version)
    assert version["server"]["name"] == "Moot"


# --- outbound: A's clients ask about B's users and aliases ---------------------------------------

async def keys_query(api: MatrixApi, user: User, wanted: dict[str, list[str]],
                     **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = await api.ok(
        "POST", "keys/query", json={"device_keys": wanted, **extra}, token=user.token
    )
    validate_response("keys.yaml", "/keys/query", "post", 200, body)
    return body


def timed_out(server_name: str) -> dict[str, str]:
    """The failure /keys/query and /keys/claim give for a server cut off at the timeout."""
    return {"errcode": "M_UNKNOWN", "error": f"{server_name} did not answer in time"}


async def keys_claim(api: MatrixApi, user: User,
                     wanted: dict[str, dict[str, str]]) -> dict[str, Any]:
    body: dict[str, Any] = await api.ok(
        "POST", "keys/claim", json={"one_time_keys": wanted}, token=user.token
    )
    validate_response("keys.yaml", "/keys/claim", "post", 200, body)
    return body


async def test_client_queries_and_claims_keys_of_a_remote_user(
    pair: tuple[Peer, Peer], http: aiohttp.ClientSession
) -> None:
    a, b = pair
    remote, uploaded = await e2e_user(b, http, "far_keys")
    local, local_uploaded = await e2e_user(a, http, "near_keys")
    api = a.api(http)
    asker = await api.register("key_asker")

    result = await keys_query(api, asker, {remote.user.user_id: [], local.user.user_id: []})
    assert result["failures"] == {}
    served = result["device_keys"][remote.user.user_id][remote.user.device_id]
    served.pop("unsigned")
    assert canonical(served) == canonical(uploaded["device_keys"])
    assert canonical(result["master_keys"][remote.user.user_id]) == \
        canonical(uploaded["master_key"])
    assert canonical(result["self_signing_keys"][remote.user.user_id]) == \
        canonical(uploaded["self_signing_key"])
    assert local.user.device_id in result["device_keys"][local.user.user_id]
    assert result["user_signing_keys"] == {}  # nobody's but one's own

    wanted = {**remote.wanted(), **local.wanted()}
    first, second = await keys_claim(api, asker, wanted), await keys_claim(api, asker, wanted)
    assert first["failures"] == {}
    [one_time] = uploaded["one_time_keys"].values()
    [fallback] = uploaded["fallback_keys"].values()
    got = [next(iter(c["one_time_keys"][remote.user.user_id][remote.user.device_id].values()))
           for c in (first, second)]
    assert [canonical(k) for k in got] == [canonical(one_time), canonical(fallback)]
    [local_key] = local_uploaded["one_time_keys"].values()
    assert canonical(next(iter(
        first["one_time_keys"][local.user.user_id][local.user.device_id].values()
    ))) == canonical(local_key)


async def test_client_reads_a_remote_profile(
    pair: tuple[Peer, Peer], http: aiohttp.ClientSession
) -> None:
    a, b = pair
    remote_api, api = b.api(http), a.api(http)
    bob = await remote_api.register("far_profile")
    await remote_api.ok("PUT", f"profile/{quote(bob.user_id)}/displayname",
                        json={"displayname": "Bob far away"}, token=bob.token)

    profile = await api.ok("GET", f"profile/{quote(bob.user_id)}")
    validate_response("profile.yaml", "/profile/{userId}", "get", 200, profile)
    assert profile == {"displayname": "Bob far away"}
    assert await api.ok("GET", f"profile/{quote(bob.user_id)}/displayname") == {
        "displayname": "Bob far away"
    }
    status, body = await api.request("GET", f"profile/{quote(bob.user_id)}/avatar_url")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await api.request("GET", f"profile/{quote('@ghost:' + b.name)}")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def test_client_resolves_a_remote_alias(
    pair: tuple[Peer, Peer], http: aiohttp.ClientSession
) -> None:
    a, b = pair
    remote_api, api = b.api(http), a.api(http)
    owner = await remote_api.register("far_alias")
    room_id = await remote_api.create_room(owner, room_alias_name="far_room")

    answer = await api.ok("GET", f"directory/room/{quote(f'#far_room:{b.name}')}")
    validate_response("directory.yaml", "/directory/room/{roomAlias}", "get", 200, answer)
    assert answer == {"room_id": room_id, "servers": [b.name]}
    status, body = await api.request("GET", f"directory/room/{quote(f'#unknown:{b.name}')}")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def test_a_stopped_server_is_a_failure_not_a_hang(
    pair: tuple[Peer, Peer], peers: Peers, http: aiohttp.ClientSession
) -> None:
    a, b = pair
    c = await peers.new("c")
    gone, _ = await e2e_user(c, http, "soon_gone")
    there, _ = await e2e_user(b, http, "still_there")
    api = a.api(http)
    asker = await api.register("asker_of_gone")
    wanted: dict[str, list[str]] = {gone.user.user_id: [], there.user.user_id: []}
    assert (await keys_query(api, asker, wanted))["failures"] == {}
    await c.stop()

    # No wall-clock bound: a refused connection is a failure of its own, not the one of a
    # server that did not answer in time, which is all that waiting out the timeout can give.
    result = await keys_query(api, asker, wanted)
    assert list(result["failures"]) == [c.name]
    assert result["failures"][c.name] != timed_out(c.name)
    assert there.user.device_id in result["device_keys"][there.user.user_id]
    claimed = await keys_claim(api, asker, {**gone.wanted(), **there.wanted()})
    assert list(claimed["failures"]) == [c.name]
    assert claimed["failures"][c.name] != timed_out(c.name)
    assert there.user.user_id in claimed["one_time_keys"]
    status, body = await api.request("GET", f"profile/{quote(gone.user.user_id)}")
    assert (status, body["errcode"]) == (502, "M_UNKNOWN")


async def test_a_hanging_server_is_cut_off_at_the_clients_timeout(
    pair: tuple[Peer, Peer], http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    a, _ = pair
    release = asyncio.Event()

    async def hang(request: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.json_response({"device_keys": {}})

    slow = await StandIn(tmp_path / "slow").start()
    try:
        slow.handlers[V1 + "/user/keys/query"] = hang
        api = a.api(http)
        asker = await api.register("impatient")
        # The server's own timeout bounds the wait: an answer before it honoured the client's.
        async with asyncio.timeout(DEFAULT_REMOTE_TIMEOUT_S):
            result = await keys_query(
                api, asker, {f"@sloth:{slow.server_name}": []}, timeout=300
            )
        # Answered while the stand-in still holds the request (it is released below).
        assert result["failures"] == {slow.server_name: timed_out(slow.server_name)}
        assert slow.hits(V1 + "/user/keys/query") == 1
    finally:
        release.set()  # lets the stand-in's handler end, so that it stops at once
        await slow.stop()


async def test_a_peers_answers_are_checked_before_a_client_sees_them(
    pair: tuple[Peer, Peer], http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A peer speaks only for its own users and the devices it was asked about; an answer of
    the wrong shape is that peer failing (502), not a 500 and not garbage passed on."""
    a, _ = pair
    api = a.api(http)
    asker = await api.register("careful_asker")
    liar = await StandIn(tmp_path / "liar").start()
    try:
        me, victim = f"@mallory:{liar.server_name}", asker.user_id

        def device(user_id: str, device_id: str) -> dict[str, Any]:
            return {"user_id": user_id, "device_id": device_id, "algorithms": [],
                    "keys": {}, "signatures": {}}

        async def keys(request: web.Request) -> web.StreamResponse:
            return web.json_response({
                "device_keys": {
                    me: {"GOOD": device(me, "GOOD"), "BAD": device(me, "OTHER"),
                         "UNASKED": device(me, "UNASKED")},
                    victim: {"FAKE": device(victim, "FAKE")},
                },
                "master_keys": {victim: {"user_id": victim, "usage": ["master"], "keys": {}}},
            })

        liar.handlers[V1 + "/user/keys/query"] = keys
        result = await keys_query(api, asker, {me: ["GOOD", "BAD"]})
        assert result["failures"] == {}
        assert result["device_keys"] == {me: {"GOOD": device(me, "GOOD")}}
        assert result["master_keys"] == {}

        async def not_an_object(request: web.Request) -> web.StreamResponse:
            return web.json_response(["surprise"])

        liar.handlers[V1 + "/query/profile"] = not_an_object
        liar.handlers[V1 + "/query/directory"] = not_an_object
        liar.handlers[V1 + "/user/keys/claim"] = not_an_object
        status, body = await api.request("GET", f"profile/{quote(me)}")
        assert (status, body["errcode"]) == (502, "M_UNKNOWN")
        status, body = await api.request(
            "GET", f"directory/room/{quote('#room:' + liar.server_name)}"
        )
        assert (status, body["errcode"]) == (502, "M_UNKNOWN")
        claimed = await keys_claim(api, asker, {me: {"GOOD": "signed_curve25519"}})
        assert (claimed["one_time_keys"], list(claimed["failures"])) == ({}, [liar.server_name])
    finally:
        await liar.stop()
