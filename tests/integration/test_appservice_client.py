"""Application services on the Client-Server API (spec "Application Service API",
"Client-Server API Extensions"), over HTTP against a server whose registration files the
tests write: the as_token, identity assertion (`user_id`, `device_id`), timestamp massaging
(`ts`), `m.login.application_service` registration and login, exclusive namespaces
(M_EXCLUSIVE), rate limits, deactivation and profiles of a service's users."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from tests.appservices import AppServiceClient, registration, write_registrations
from tests.helpers import MatrixApi

if TYPE_CHECKING:
    from tests.conftest import MakeServer

pytestmark = pytest.mark.usefixtures("no_server_errors")

SENDER = "@_bridge_bot:localhost"
GHOST = "@_bridge_alice:localhost"


def services(tmp_path: Path, **bridge: Any) -> dict[str, Any]:
    """Config overrides: "bridge" holds `_bridge_` exclusively, "helper" `_helper_` not."""
    files = write_registrations(
        tmp_path / "appservices",
        registration("bridge", **bridge),
        registration("helper", prefix="_helper_", exclusive=False),
    )
    return {"appservices.registration_files": files}


@pytest.fixture
async def api(
    make_homeserver: MakeServer, tmp_path: Path, http: aiohttp.ClientSession
) -> MatrixApi:
    server = await make_homeserver(services(tmp_path))
    return MatrixApi(server.url, http)


@pytest.fixture
def bridge(api: MatrixApi) -> AppServiceClient:
    return AppServiceClient(api, "as_token_of_bridge")


async def ghost(bridge: AppServiceClient, localpart: str = "_bridge_alice") -> str:
    status, body = await bridge.register(localpart)
    assert status == 200, body
    user_id: str = body["user_id"]
    return user_id


# ---- the as_token and identity assertion -----------------------------------------------------


async def test_the_as_token_acts_as_the_sender_without_registration(
    api: MatrixApi, bridge: AppServiceClient
) -> None:
    assert await bridge.ok("GET", "account/whoami") == {"user_id": SENDER, "is_guest": False}
    # The token in the query string works too.
    status, body = await api.request(
        "GET", "account/whoami", params={"access_token": "as_token_of_bridge"}
    )
    assert (status, body["user_id"]) == (200, SENDER)
    # The sender is a user like any: it creates rooms and has a profile.
    room_id = (await bridge.ok("POST", "createRoom", json={}))["room_id"]
    await bridge.ok("PUT", f"profile/{SENDER}/displayname", json={"displayname": "Bridge bot"})
    profile = await api.ok("GET", f"profile/{SENDER}")
    assert profile["displayname"] == "Bridge bot"
    members = await bridge.ok("GET", f"rooms/{room_id}/joined_members")
    assert SENDER in members["joined"]


async def test_a_wrong_token_is_unknown(api: MatrixApi) -> None:
    status, body = await api.request("GET", "account/whoami", token="as_token_of_nobody")
    assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")


async def test_user_id_masquerades_as_a_registered_user_of_the_namespace(
    api: MatrixApi, bridge: AppServiceClient
) -> None:
    user_id = await ghost(bridge)
    assert user_id == GHOST
    me = await bridge.ok("GET", "account/whoami", as_user=GHOST)
    assert me == {"user_id": GHOST, "is_guest": False}
    room_id = (await bridge.ok("POST", "createRoom", json={}, as_user=GHOST))["room_id"]
    state = await bridge.ok("GET", f"rooms/{room_id}/state/m.room.create", as_user=GHOST)
    assert state is not None
    members = await bridge.ok("GET", f"rooms/{room_id}/joined_members", as_user=GHOST)
    assert list(members["joined"]) == [GHOST]


@pytest.mark.parametrize("target", [
    "@alice:localhost",            # registered, outside the namespace
    "@_helper_x:localhost",        # another service's namespace
    "@_bridge_nobody:localhost",   # in the namespace, never registered
    "@_bridge_alice:elsewhere",    # matches, but not a local user
    "not a user",
])
async def test_masquerading_outside_what_the_service_holds_is_forbidden(
    api: MatrixApi, bridge: AppServiceClient, target: str
) -> None:
    await api.register("alice")
    status, body = await bridge.request("GET", "account/whoami", as_user=target)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_a_users_own_token_ignores_user_id(api: MatrixApi, bridge: AppServiceClient) -> None:
    await ghost(bridge)
    alice = await api.register("alice")
    status, body = await api.request(
        "GET", "account/whoami", token=alice.token, params={"user_id": GHOST}
    )
    assert (status, body["user_id"]) == (200, alice.user_id)


async def test_device_id_picks_a_device_of_the_user(
    api: MatrixApi, bridge: AppServiceClient
) -> None:
    await ghost(bridge)
    login = await bridge.ok("POST", "login", json={
        "type": "m.login.application_service", "device_id": "GHOSTPHONE",
        "identifier": {"type": "m.id.user", "user": GHOST},
    })
    assert login["device_id"] == "GHOSTPHONE"
    for key in ("device_id", "org.matrix.msc3202.device_id"):
        me = await bridge.ok(
            "GET", "account/whoami", as_user=GHOST, params={key: "GHOSTPHONE"}
        )
        assert me["device_id"] == "GHOSTPHONE"
    status, body = await bridge.request(
        "GET", "account/whoami", as_user=GHOST, params={"device_id": "NOSUCH"}
    )
    assert (status, body["errcode"]) == (400, "M_UNKNOWN_DEVICE")


async def test_what_needs_a_device_is_refused_without_one(bridge: AppServiceClient) -> None:
    """Keys and pushers belong to a device; a service's request that named none gets 400."""
    await ghost(bridge)
    keys = await bridge.request("POST", "keys/upload", as_user=GHOST, json={})
    pusher = await bridge.request("POST", "pushers/set", as_user=GHOST, json={
        "kind": "http", "app_id": "a", "pushkey": "k", "app_display_name": "A",
        "device_display_name": "D", "lang": "en",
        "data": {"url": "https://p.example/_matrix/push/v1/notify"},
    })
    for status, body in (keys, pusher):
        assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")


# ---- timestamp massaging -----------------------------------------------------------------


async def test_ts_sets_origin_server_ts_of_messages_and_state(
    api: MatrixApi, bridge: AppServiceClient
) -> None:
    await ghost(bridge)
    room_id = (await bridge.ok("POST", "createRoom", json={}, as_user=GHOST))["room_id"]
    sent = await bridge.ok(
        "PUT", f"rooms/{room_id}/send/m.room.message/t1", as_user=GHOST,
        params={"ts": "1234567890"}, json={"msgtype": "m.text", "body": "from 2009"},
    )
    state = await bridge.ok(
        "PUT", f"rooms/{room_id}/state/m.room.topic", as_user=GHOST,
        params={"ts": "1234567891"}, json={"topic": "old"},
    )
    for event_id, ts in ((sent["event_id"], 1234567890), (state["event_id"], 1234567891)):
        event = await bridge.ok("GET", f"rooms/{room_id}/event/{event_id}", as_user=GHOST)
        assert event["origin_server_ts"] == ts


async def test_a_users_ts_is_ignored(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room_id = await api.create_room(alice)
    sent = await api.ok(
        "PUT", f"rooms/{room_id}/send/m.room.message/t1", token=alice.token,
        params={"ts": "1234567890"}, json={"msgtype": "m.text", "body": "now"},
    )
    event = await api.ok("GET", f"rooms/{room_id}/event/{sent['event_id']}", token=alice.token)
    assert event["origin_server_ts"] != 1234567890


@pytest.mark.parametrize("ts", ["soon", "-1", "1.5", " 12", "9007199254740992"])
async def test_a_bad_ts_is_refused(bridge: AppServiceClient, ts: str) -> None:
    room_id = (await bridge.ok("POST", "createRoom", json={}))["room_id"]
    status, body = await bridge.request(
        "PUT", f"rooms/{room_id}/send/m.room.message/t1", params={"ts": ts},
        json={"msgtype": "m.text", "body": "x"},
    )
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")


# ---- registration and login of the service's users ----------------------------------------


async def test_registration_with_inhibit_login_returns_only_the_user(
    api: MatrixApi, bridge: AppServiceClient
) -> None:
    status, body = await bridge.register("_bridge_alice")
    assert (status, body) == (200, {"user_id": GHOST})
    status, again = await bridge.register("_bridge_alice")
    assert (status, again["errcode"]) == (400, "M_USER_IN_USE")
    # No password: nobody logs in with one.
    status, _ = await api.request("POST", "login", json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": GHOST},
        "password": "",
    })
    assert status in (400, 403)


async def test_registration_without_inhibit_login_logs_in(
    api: MatrixApi, bridge: AppServiceClient
) -> None:
    status, body = await bridge.register("_bridge_bob", inhibit_login=False, device_id="D1")
    assert status == 200, body
    assert body["device_id"] == "D1"
    me = await api.ok("GET", "account/whoami", token=body["access_token"])
    assert me["user_id"] == "@_bridge_bob:localhost"


async def test_registration_works_while_registration_is_closed(
    make_homeserver: MakeServer, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    server = await make_homeserver({**services(tmp_path), "registration.enabled": False})
    api = MatrixApi(server.url, http)
    status, body = await api.request("POST", "register", json={
        "username": "alice", "password": "correct horse 1", "auth": {"type": "m.login.dummy"},
    })
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    assert await ghost(AppServiceClient(api, "as_token_of_bridge")) == GHOST


@pytest.mark.parametrize("localpart", ["alice", "_helper_x"])
async def test_a_service_registering_outside_its_namespace_is_exclusive(
    bridge: AppServiceClient, localpart: str
) -> None:
    status, body = await bridge.register(localpart)
    assert (status, body["errcode"]) == (400, "M_EXCLUSIVE")


async def test_a_service_registering_in_another_services_exclusive_namespace_is_refused(
    make_homeserver: MakeServer, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """Two services claiming `_bridge_`: the non-exclusive one may not take its users."""
    files = write_registrations(
        tmp_path / "appservices", registration("bridge"),
        registration("overlap", prefix="_bridge_", exclusive=False, sender_localpart="overlap"),
    )
    server = await make_homeserver({"appservices.registration_files": files})
    overlap = AppServiceClient(MatrixApi(server.url, http), "as_token_of_overlap")
    status, body = await overlap.register("_bridge_alice")
    assert (status, body["errcode"]) == (400, "M_EXCLUSIVE")


@pytest.mark.parametrize("token", [None, "user"])
async def test_appservice_registration_needs_an_as_token(
    api: MatrixApi, token: str | None
) -> None:
    user_token = None if token is None else (await api.register("alice")).token
    status, body = await api.request("POST", "register", token=user_token, json={
        "type": "m.login.application_service", "username": "_bridge_alice",
    })
    expected = "M_MISSING_TOKEN" if token is None else "M_UNKNOWN_TOKEN"
    assert (status, body["errcode"]) == (401, expected)


async def test_users_may_not_register_in_an_exclusive_namespace(api: MatrixApi) -> None:
    status, body = await api.request("POST", "register", json={
        "username": "_bridge_mallory", "password": "correct horse 1",
        "auth": {"type": "m.login.dummy"},
    })
    assert (status, body["errcode"]) == (400, "M_EXCLUSIVE")
    status, body = await api.request(
        "GET", "register/available", params={"username": "_bridge_mallory"}
    )
    assert (status, body["errcode"]) == (400, "M_EXCLUSIVE")
    # The sender's name is the service's too.
    status, body = await api.request(
        "GET", "register/available", params={"username": "_bridge_bot"}
    )
    assert (status, body["errcode"]) == (400, "M_EXCLUSIVE")


async def test_a_non_exclusive_namespace_leaves_registration_open(api: MatrixApi) -> None:
    body = await api.ok("GET", "register/available", params={"username": "_helper_x"})
    assert body == {"available": True}
    assert (await api.register("_helper_x")).user_id == "@_helper_x:localhost"


async def test_login_flows_list_the_appservice_type(api: MatrixApi) -> None:
    flows = (await api.ok("GET", "login"))["flows"]
    assert {"type": "m.login.application_service"} in flows


async def test_appservice_login_of_a_registered_user(
    api: MatrixApi, bridge: AppServiceClient
) -> None:
    await ghost(bridge)
    body = await bridge.ok("POST", "login", json={
        "type": "m.login.application_service",
        "identifier": {"type": "m.id.user", "user": "_bridge_alice"},
    })
    assert body["user_id"] == GHOST
    me = await api.ok("GET", "account/whoami", token=body["access_token"])
    assert me == {"user_id": GHOST, "device_id": body["device_id"], "is_guest": False}


@pytest.mark.parametrize(("login", "status", "errcode"), [
    ({"identifier": {"type": "m.id.user", "user": "alice"}}, 403, "M_EXCLUSIVE"),
    ({"identifier": {"type": "m.id.user", "user": "_bridge_nobody"}}, 403, "M_FORBIDDEN"),
    ({"user": "_bridge_alice"}, 400, "M_MISSING_PARAM"),  # MSC2778: identifier only
])
async def test_appservice_login_outside_the_service(
    api: MatrixApi, bridge: AppServiceClient, login: dict[str, Any], status: int, errcode: str
) -> None:
    await api.register("alice")
    await ghost(bridge)
    got, body = await bridge.request(
        "POST", "login", json={"type": "m.login.application_service", **login}
    )
    assert (got, body["errcode"]) == (status, errcode)


async def test_appservice_login_needs_the_as_token(
    api: MatrixApi, bridge: AppServiceClient
) -> None:
    await ghost(bridge)
    status, body = await api.request("POST", "login", json={
        "type": "m.login.application_service",
        "identifier": {"type": "m.id.user", "user": GHOST},
    })
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")


# ---- aliases ---------------------------------------------------------------------------


async def test_users_may_not_create_aliases_in_an_exclusive_namespace(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room_id = await api.create_room(alice)
    status, body = await api.request(
        "PUT", "directory/room/%23_bridge_x:localhost", token=alice.token,
        json={"room_id": room_id},
    )
    assert (status, body["errcode"]) == (400, "M_EXCLUSIVE")
    status, body = await api.request(
        "POST", "createRoom", token=alice.token, json={"room_alias_name": "_bridge_y"}
    )
    assert (status, body["errcode"]) == (400, "M_EXCLUSIVE")
    # Outside it, as before.
    await api.ok("PUT", "directory/room/%23mine:localhost", token=alice.token,
                 json={"room_id": room_id})


async def test_a_service_manages_the_aliases_of_its_namespace_only(
    api: MatrixApi, bridge: AppServiceClient
) -> None:
    alice = await api.register("alice")
    room_id = await api.create_room(alice, preset="public_chat")
    # Not in the room, yet it may point its alias there.
    await bridge.ok("PUT", "directory/room/%23_bridge_x:localhost", json={"room_id": room_id})
    resolved = await api.ok("GET", "directory/room/%23_bridge_x:localhost")
    assert resolved["room_id"] == room_id
    status, body = await bridge.request(
        "PUT", "directory/room/%23other:localhost", json={"room_id": room_id}
    )
    assert (status, body["errcode"]) == (400, "M_EXCLUSIVE")
    # alice may not delete the service's alias; the service may delete it, whoever made it.
    status, body = await api.request(
        "DELETE", "directory/room/%23_bridge_x:localhost", token=alice.token
    )
    assert (status, body["errcode"]) == (400, "M_EXCLUSIVE")
    await bridge.ok("DELETE", "directory/room/%23_bridge_x:localhost")
    status, _ = await api.request("GET", "directory/room/%23_bridge_x:localhost")
    assert status == 404


# ---- rate limits ---------------------------------------------------------------------------


async def test_a_service_registered_unlimited_is_never_rate_limited(
    make_homeserver: MakeServer, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    server = await make_homeserver({
        **services(tmp_path, rate_limited=False), "rate_limits.enabled": True,
        "rate_limits.per_user": {"per_second": 0.001, "burst": 2},
    })
    api = MatrixApi(server.url, http)
    bridge = AppServiceClient(api, "as_token_of_bridge")
    helper = AppServiceClient(api, "as_token_of_helper")
    await ghost(bridge)
    for client, as_user in ((bridge, None), (bridge, GHOST), (helper, None)):
        statuses = [
            (await client.request("POST", "createRoom", json={}, as_user=as_user))[0]
            for _ in range(4)
        ]
        limited = client is helper  # `rate_limited` defaults to true
        assert statuses == ([200, 200, 429, 429] if limited else [200] * 4), (client, as_user)


# ---- deactivation and profiles of the service's users -------------------------------------


async def test_a_service_deactivates_its_user_without_uia(
    api: MatrixApi, bridge: AppServiceClient
) -> None:
    await ghost(bridge)
    login = await bridge.ok("POST", "login", json={
        "type": "m.login.application_service", "identifier": {"type": "m.id.user", "user": GHOST},
    })
    result = await bridge.ok("POST", "account/deactivate", as_user=GHOST, json={})
    assert result == {"id_server_unbind_result": "success"}
    status, body = await api.request("GET", "account/whoami", token=login["access_token"])
    assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    status, body = await bridge.request("GET", "account/whoami", as_user=GHOST)
    assert (status, body["errcode"]) == (403, "M_USER_DEACTIVATED")
    # A user still needs UIA.
    alice = await api.register("alice")
    status, body = await api.request("POST", "account/deactivate", token=alice.token, json={})
    assert status == 401 and "flows" in body


async def test_a_service_sets_its_users_profiles(api: MatrixApi, bridge: AppServiceClient) -> None:
    await ghost(bridge)
    await bridge.ok("PUT", f"profile/{GHOST}/displayname", as_user=GHOST,
                    json={"displayname": "Alice (WhatsApp)"})
    await bridge.ok("PUT", f"profile/{GHOST}/avatar_url", as_user=GHOST,
                    json={"avatar_url": "mxc://localhost/abc"})
    profile = await api.ok("GET", f"profile/{GHOST}")
    assert profile == {"displayname": "Alice (WhatsApp)", "avatar_url": "mxc://localhost/abc"}
