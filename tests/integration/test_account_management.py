"""Account management over HTTP: changing the password and deactivating the account behind
User-Interactive Authentication, /account/3pid, /capabilities, and refresh tokens (issue,
rotation, expiry with `soft_logout`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from tests.auth_flows import challenge, login, password_auth, with_uia
from tests.bad_input import assert_sane, bodies, collect, send_body
from tests.helpers import MatrixApi, User, validate_response

if TYPE_CHECKING:
    from tests.conftest import MakeServer

PASSWORD_PATH = ("password_management.yaml", "/account/password")
DEACTIVATE_PATH = ("account_deactivation.yaml", "/account/deactivate")
NEW_PASSWORD = "battery staple 2"


async def whoami_status(api: MatrixApi, token: str) -> tuple[int, Any]:
    return await api.request("GET", "account/whoami", token=token)


async def login_status(api: MatrixApi, user: User, password: str) -> tuple[int, Any]:
    return await api.request("POST", "login", json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user.user_id},
        "password": password,
    })


async def test_change_password_logs_out_other_devices_by_default(api: MatrixApi) -> None:
    alice = await api.register("alice")
    other = await login(api, alice)
    status, body = await with_uia(
        api, alice, "post", "account/password", {"new_password": NEW_PASSWORD}, PASSWORD_PATH
    )
    assert status == 200, body
    validate_response(*PASSWORD_PATH, "post", 200, body)
    assert (await whoami_status(api, alice.token))[0] == 200  # the current session survives
    status, body = await whoami_status(api, other.token)
    assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    assert (await login_status(api, alice, alice.password))[0] == 403
    assert (await login_status(api, alice, NEW_PASSWORD))[0] == 200


async def test_change_password_can_keep_other_devices(api: MatrixApi) -> None:
    alice = await api.register("alice")
    other = await login(api, alice)
    status, body = await with_uia(
        api, alice, "post", "account/password",
        {"new_password": NEW_PASSWORD, "logout_devices": False}, PASSWORD_PATH,
    )
    assert status == 200, body
    assert (await whoami_status(api, other.token))[0] == 200
    assert (await login_status(api, alice, NEW_PASSWORD))[0] == 200


async def test_change_password_completing_request_may_add_or_drop_fields(
    api: MatrixApi,
) -> None:
    """The session is bound to the endpoint, not the body: `logout_devices: false` added in
    the second stage is honoured (it was M_FORBIDDEN "The request changed"), and dropped in
    the second stage the default (log out) applies: the completing body is what runs."""
    alice = await api.register("alice")
    other = await login(api, alice)
    session = await challenge(
        api, "post", "account/password", {"new_password": NEW_PASSWORD}, alice.token,
        PASSWORD_PATH,
    )
    status, body = await api.request("POST", "account/password", token=alice.token, json={
        "new_password": NEW_PASSWORD, "logout_devices": False,
        "auth": password_auth(alice, session),
    })
    assert status == 200, body
    assert (await whoami_status(api, other.token))[0] == 200
    assert (await login_status(api, alice, NEW_PASSWORD))[0] == 200

    changed = User(alice.user_id, alice.token, alice.device_id, NEW_PASSWORD)
    session = await challenge(
        api, "post", "account/password",
        {"new_password": "third password", "logout_devices": False}, alice.token,
        PASSWORD_PATH,
    )
    status, body = await api.request("POST", "account/password", token=alice.token, json={
        "new_password": "third password", "auth": password_auth(changed, session),
    })
    assert status == 200, body
    assert (await whoami_status(api, other.token))[0] == 401
    assert (await whoami_status(api, alice.token))[0] == 200


async def test_completed_password_session_sets_no_other_password(api: MatrixApi) -> None:
    """A completed session answers its own request again (a lost response), but replayed
    with another `new_password` it is refused."""
    alice = await api.register("alice")
    body = {"new_password": NEW_PASSWORD, "logout_devices": False}
    session = await challenge(api, "post", "account/password", body, alice.token, PASSWORD_PATH)
    auth = password_auth(alice, session)
    await api.ok("POST", "account/password", token=alice.token, json={**body, "auth": auth})
    await api.ok("POST", "account/password", token=alice.token, json={**body, "auth": auth})
    status, result = await api.request("POST", "account/password", token=alice.token, json={
        "new_password": "stolen password", "logout_devices": False, "auth": {"session": session},
    })
    assert (status, result["errcode"]) == (403, "M_FORBIDDEN"), result
    assert (await login_status(api, alice, NEW_PASSWORD))[0] == 200


async def test_change_password_without_an_access_token(api: MatrixApi) -> None:
    """The endpoint serves token-less callers: the password stage names the account, and
    every device is logged out."""
    alice = await api.register("alice")
    body = {"new_password": NEW_PASSWORD}
    status, challenge = await api.request("POST", "account/password", json=body)
    assert status == 401, challenge
    auth = {"type": "m.login.password", "session": challenge["session"], "password": "x"}
    status, result = await api.request("POST", "account/password", json={**body, "auth": auth})
    assert (status, result["errcode"]) == (400, "M_MISSING_PARAM")
    auth = password_auth(alice, challenge["session"])
    status, result = await api.request("POST", "account/password", json={**body, "auth": auth})
    assert status == 200, result
    assert (await whoami_status(api, alice.token))[0] == 401
    assert (await login_status(api, alice, NEW_PASSWORD))[0] == 200


@pytest.mark.parametrize(
    ("body", "status", "errcode"),
    [({}, 400, "M_MISSING_PARAM"), ({"new_password": 5}, 400, "M_BAD_JSON"),
     ({"new_password": ""}, 400, "M_WEAK_PASSWORD"),
     ({"new_password": "x" * 600}, 400, "M_INVALID_PARAM"),
     ({"new_password": NEW_PASSWORD, "logout_devices": "yes"}, 400, "M_BAD_JSON")],
)
async def test_change_password_errors(
    api: MatrixApi, body: dict[str, Any], status: int, errcode: str
) -> None:
    alice = await api.register("alice")
    body = {**body, "auth": password_auth(alice)}
    got, result = await api.request("POST", "account/password", json=body, token=alice.token)
    assert (got, result["errcode"]) == (status, errcode)
    assert (await login_status(api, alice, alice.password))[0] == 200


async def test_change_password_wrong_password(api: MatrixApi) -> None:
    alice = await api.register("alice")
    status, body = await api.request(
        "POST", "account/password",
        json={"new_password": NEW_PASSWORD, "auth": password_auth(alice, password="nope")},
        token=alice.token,
    )
    assert (status, body["errcode"]) == (401, "M_FORBIDDEN")
    validate_response(*PASSWORD_PATH, "post", 401, body)
    assert (await login_status(api, alice, alice.password))[0] == 200


async def test_deactivate_leaves_rooms_kills_tokens_and_reserves_the_name(
    api: MatrixApi,
) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    joined = await api.create_room(bob, preset="public_chat")
    await api.join(alice, joined)
    invited = await api.create_room(bob, preset="private_chat")
    await api.invite(bob, invited, alice)
    other = await login(api, alice)

    status, body = await with_uia(api, alice, "post", "account/deactivate", {}, DEACTIVATE_PATH)
    assert status == 200, body
    validate_response(*DEACTIVATE_PATH, "post", 200, body)
    assert body == {"id_server_unbind_result": "success"}

    for room in (joined, invited):
        member = await api.ok(
            "GET", f"rooms/{room}/state/m.room.member/{alice.user_id}", token=bob.token
        )
        assert member["membership"] == "leave"
    for token in (alice.token, other.token):
        status, body = await whoami_status(api, token)
        assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    status, body = await login_status(api, alice, alice.password)
    assert (status, body["errcode"]) == (403, "M_USER_DEACTIVATED")
    status, body = await api.request("POST", "register", json={
        "username": "alice", "password": "another one", "auth": {"type": "m.login.dummy"},
    })
    assert (status, body["errcode"]) == (400, "M_USER_IN_USE")


async def test_deactivate_needs_the_password(api: MatrixApi) -> None:
    alice = await api.register("alice")
    status, body = await api.request(
        "POST", "account/deactivate", json={"auth": password_auth(alice, password="nope")},
        token=alice.token,
    )
    assert (status, body["errcode"]) == (401, "M_FORBIDDEN")
    status, body = await api.request(
        "POST", "account/deactivate", json={"erase": "please"}, token=alice.token
    )
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")
    assert (await whoami_status(api, alice.token))[0] == 200


async def test_threepids_and_capabilities(api: MatrixApi) -> None:
    alice = await api.register("alice")
    body = await api.ok("GET", "account/3pid", token=alice.token)
    validate_response("administrative_contact.yaml", "/account/3pid", "get", 200, body)
    assert body == {"threepids": []}
    status, body = await api.request("GET", "account/3pid")
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")

    caps = await api.ok("GET", "capabilities", token=alice.token)
    validate_response("capabilities.yaml", "/capabilities", "get", 200, caps)
    assert caps["capabilities"]["m.change_password"] == {"enabled": True}
    assert caps["capabilities"]["m.3pid_changes"] == {"enabled": False}


# Refresh tokens

async def refreshing_login(api: MatrixApi, user: User) -> dict[str, Any]:
    body: dict[str, Any] = await api.ok("POST", "login", json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user.user_id},
        "password": user.password, "refresh_token": True,
    })
    validate_response("login.yaml", "/login", "post", 200, body)
    return body


async def refresh(api: MatrixApi, refresh_token: str) -> tuple[int, Any]:
    return await api.request("POST", "refresh", json={"refresh_token": refresh_token})


async def test_login_and_register_hand_out_refresh_tokens_only_when_asked(
    api: MatrixApi,
) -> None:
    alice = await api.register("alice")
    plain = await login(api, alice)
    assert plain.token  # and no refresh token or expiry:
    body = await api.ok("POST", "login", json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": alice.user_id},
        "password": alice.password,
    })
    assert "refresh_token" not in body and "expires_in_ms" not in body
    body = await refreshing_login(api, alice)
    assert body["refresh_token"].startswith("mar_") and body["expires_in_ms"] == 3_600_000

    status, body = await api.request("POST", "register", json={
        "username": "bob", "password": "bob's password", "refresh_token": True,
        "auth": {"type": "m.login.dummy"},
    })
    assert status == 200, body
    validate_response("registration.yaml", "/register", "post", 200, body)
    assert isinstance(body["refresh_token"], str) and body["expires_in_ms"] > 0


async def test_refresh_rotates_the_pair(api: MatrixApi) -> None:
    alice = await api.register("alice")
    first = await refreshing_login(api, alice)
    status, second = await refresh(api, first["refresh_token"])
    assert status == 200, second
    validate_response("refresh.yaml", "/refresh", "post", 200, second)
    assert second["refresh_token"] != first["refresh_token"]
    status, me = await whoami_status(api, second["access_token"])
    assert status == 200 and me["device_id"] == first["device_id"]
    # The new pair is in use, so the old refresh token and access token are revoked.
    status, body = await refresh(api, first["refresh_token"])
    assert (status, body["errcode"], body["soft_logout"]) == (401, "M_UNKNOWN_TOKEN", False)
    assert (await whoami_status(api, first["access_token"]))[0] == 401
    status, third = await refresh(api, second["refresh_token"])
    assert status == 200, third


async def test_refresh_can_be_repeated_until_the_new_pair_is_used(api: MatrixApi) -> None:
    """The spec: a client that lost the response may repeat the refresh."""
    alice = await api.register("alice")
    first = await refreshing_login(api, alice)
    status, lost = await refresh(api, first["refresh_token"])
    assert status == 200
    status, again = await refresh(api, first["refresh_token"])
    assert status == 200, again
    # The repeat superseded the pair whose response was lost.
    assert (await whoami_status(api, lost["access_token"]))[0] == 401
    assert (await refresh(api, lost["refresh_token"]))[0] == 401
    assert (await whoami_status(api, again["access_token"]))[0] == 200


@pytest.mark.parametrize(
    ("body", "status", "errcode"),
    [({}, 400, "M_MISSING_PARAM"), ({"refresh_token": 7}, 400, "M_BAD_JSON"),
     ({"refresh_token": "mar_unknown"}, 401, "M_UNKNOWN_TOKEN"),
     ({"refresh_token": "mat_not-a-refresh-token"}, 401, "M_UNKNOWN_TOKEN")],
)
async def test_refresh_errors(api: MatrixApi, body: Any, status: int, errcode: str) -> None:
    got, result = await api.request("POST", "refresh", json=body)
    assert (got, result["errcode"]) == (status, errcode)


async def test_logout_and_device_deletion_revoke_refresh_tokens(api: MatrixApi) -> None:
    alice = await api.register("alice")
    session = await refreshing_login(api, alice)
    await api.ok("POST", "logout", json={}, token=session["access_token"])
    assert (await refresh(api, session["refresh_token"]))[0] == 401


async def test_expired_access_token_is_soft_logout(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    server = await make_homeserver(overrides={"accounts.access_token_lifetime_ms": 1})
    api = MatrixApi(server.url, http)
    alice = await api.register("alice")
    session = await refreshing_login(api, alice)
    assert session["expires_in_ms"] == 1
    await asyncio.sleep(0.01)  # outlive the 1 ms lifetime (time passing, not synchronization)
    status, body = await whoami_status(api, session["access_token"])
    assert (status, body["errcode"], body["soft_logout"]) == (401, "M_UNKNOWN_TOKEN", True)
    status, renewed = await refresh(api, session["refresh_token"])
    assert status == 200, renewed
    # A token without a refresh token never expires, whatever the lifetime.
    assert (await whoami_status(api, alice.token))[0] == 200


@pytest.mark.parametrize(
    ("method", "path", "with_token"),
    [("POST", "account/password", True), ("POST", "account/password", False),
     ("POST", "account/deactivate", True), ("POST", "account/deactivate", False),
     ("POST", "refresh", False)],
)
async def test_account_endpoints_survive_arbitrary_bodies(
    api: MatrixApi, method: str, path: str, with_token: bool
) -> None:
    alice = await api.register("alice")
    token = alice.token if with_token else None
    for kind, value in collect(bodies):
        status, body = await send_body(api, method, path, token, kind, value)
        assert_sane(status, body, (path, value))
    assert (await whoami_status(api, alice.token))[0] == 200
