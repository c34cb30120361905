"""Registration, login, logout and whoami against a running server, over HTTP."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from tests.auth_flows import password_login
from tests.helpers import PASSWORD, MatrixApi, User, validate_response

if TYPE_CHECKING:
    from tests.conftest import MakeServer, RunningServer

DUMMY = {"type": "m.login.dummy"}


async def whoami(api: MatrixApi, token: str) -> tuple[int, Any]:
    return await api.request("GET", "account/whoami", token=token)


async def test_register_asks_for_dummy_auth_then_registers(api: MatrixApi) -> None:
    body = {"username": "alice", "password": PASSWORD, "initial_device_display_name": "Phone"}
    status, challenge = await api.request("POST", "register", json=body)
    assert status == 401
    assert challenge["flows"] == [{"stages": ["m.login.dummy"]}]
    assert challenge["params"] == {}
    assert isinstance(challenge["session"], str)

    auth = {**DUMMY, "session": challenge["session"]}
    status, result = await api.request("POST", "register", json={**body, "auth": auth})
    assert status == 200, result
    validate_response("registration.yaml", "/register", "post", 200, result)
    assert result["user_id"] == f"@alice:{_server_name(result)}"
    assert "home_server" not in result
    status, me = await whoami(api, result["access_token"])
    assert (status, me) == (
        200, {"user_id": result["user_id"], "device_id": result["device_id"], "is_guest": False}
    )


def _server_name(result: dict[str, Any]) -> str:
    return str(result["user_id"]).split(":", 1)[1]


async def test_register_keeps_the_requested_device_id(api: MatrixApi) -> None:
    status, result = await api.request(
        "POST", "register", json={"username": "bob", "password": PASSWORD,
                                  "device_id": "MYPHONE", "auth": DUMMY},
    )
    assert status == 200
    assert result["device_id"] == "MYPHONE"


async def test_register_without_username_generates_one(api: MatrixApi) -> None:
    status, result = await api.request("POST", "register", json={"password": PASSWORD,
                                                                 "auth": DUMMY})
    assert status == 200
    validate_response("registration.yaml", "/register", "post", 200, result)
    assert result["user_id"].startswith("@")


async def test_register_inhibit_login_returns_no_token(api: MatrixApi) -> None:
    status, result = await api.request(
        "POST", "register",
        json={"username": "carol", "password": PASSWORD, "inhibit_login": True, "auth": DUMMY},
    )
    assert status == 200
    validate_response("registration.yaml", "/register", "post", 200, result)
    assert set(result) == {"user_id"}


async def test_register_taken_name_is_user_in_use_before_auth(api: MatrixApi) -> None:
    await api.register("dave")
    for body in ({"username": "dave"}, {"username": "dave", "auth": DUMMY}):
        status, error = await api.request("POST", "register", json=body)
        assert (status, error["errcode"]) == (400, "M_USER_IN_USE")


@pytest.mark.parametrize("username", ["eve smith", "Ève", "eve:x", "", "a" * 300])
async def test_register_invalid_username(api: MatrixApi, username: str) -> None:
    status, error = await api.request("POST", "register", json={"username": username,
                                                                "auth": DUMMY})
    assert (status, error["errcode"]) == (400, "M_INVALID_USERNAME")


async def test_register_lowercases_the_username(api: MatrixApi) -> None:
    """Synapse lowercases a requested localpart; the user logs in under either spelling."""
    status, result = await api.request("POST", "register", json={
        "username": "EveSmith", "password": PASSWORD, "auth": DUMMY,
    })
    assert status == 200, result
    assert result["user_id"] == f"@evesmith:{_server_name(result)}"
    for name in ("EveSmith", "evesmith"):
        await api.ok("POST", "login", json=password_login(name))
    status, error = await api.request("POST", "register", json={"username": "EVESMITH",
                                                                "auth": DUMMY})
    assert (status, error["errcode"]) == (400, "M_USER_IN_USE")


async def _challenge(api: MatrixApi, body: dict[str, Any]) -> str:
    status, challenge = await api.request("POST", "register", json=body)
    assert status == 401, challenge
    assert challenge["completed"] == [] and "errcode" not in challenge
    session: str = challenge["session"]
    return session


async def test_register_session_remembers_the_first_request(
    homeserver: RunningServer, api: MatrixApi
) -> None:
    """The completing request may carry only `auth`: username, password, device ID and
    display name come from the first request (whose password is kept only as a hash)."""
    session = await _challenge(api, {
        "username": "Iris", "password": PASSWORD, "device_id": "IRISPHONE",
        "initial_device_display_name": "Iris's phone",
    })
    db = homeserver.hs.db
    assert db is not None
    async with db.connection() as conn:
        stored = await conn.fetchrow("SELECT * FROM uia_sessions WHERE session_id = $1", session)
    assert stored is not None and PASSWORD not in str(dict(stored))
    status, result = await api.request("POST", "register",
                                       json={"auth": {**DUMMY, "session": session}})
    assert status == 200, result
    validate_response("registration.yaml", "/register", "post", 200, result)
    assert result["user_id"] == f"@iris:{_server_name(result)}"
    assert result["device_id"] == "IRISPHONE"
    devices = await api.ok("GET", "devices", token=result["access_token"])
    assert [(d["device_id"], d.get("display_name")) for d in devices["devices"]] == [
        ("IRISPHONE", "Iris's phone")
    ]
    await api.ok("POST", "login", json=password_login("iris"))


async def test_register_completing_a_session_twice_returns_the_same_user(
    api: MatrixApi,
) -> None:
    """A client that lost the response completes the session again: the same user, logged
    in afresh (Synapse's `registered_user_id`), not a second account or M_USER_IN_USE."""
    body = {"username": "jack", "password": PASSWORD}
    session = await _challenge(api, body)
    auth = {"auth": {**DUMMY, "session": session}}
    first = await api.ok("POST", "register", json={**body, **auth})
    again = await api.ok("POST", "register", json={**body, **auth})
    only_auth = await api.ok("POST", "register", json=auth)
    for result in (again, only_auth):
        validate_response("registration.yaml", "/register", "post", 200, result)
        assert result["user_id"] == first["user_id"]
        me = await api.ok("GET", "account/whoami", token=result["access_token"])
        assert me["user_id"] == first["user_id"]
    # Without a username the retry is the generated user too, not another one.
    session = await _challenge(api, {"password": PASSWORD})
    auth = {"auth": {**DUMMY, "session": session}}
    generated = await api.ok("POST", "register", json=auth)
    assert (await api.ok("POST", "register", json=auth))["user_id"] == generated["user_id"]


async def test_register_remembered_inhibit_login_returns_no_token(api: MatrixApi) -> None:
    session = await _challenge(api, {"username": "kate", "password": PASSWORD,
                                     "inhibit_login": True})
    for _ in range(2):
        status, result = await api.request("POST", "register",
                                           json={"auth": {**DUMMY, "session": session}})
        assert status == 200, result
        assert result == {"user_id": result["user_id"]}
        assert result["user_id"].startswith("@kate:")


async def test_register_failed_stage_lists_completed_and_flows(api: MatrixApi) -> None:
    session = await _challenge(api, {"username": "liam", "password": PASSWORD})
    for auth in ({"type": "m.login.recaptcha", "session": session}, {"session": session}):
        status, error = await api.request("POST", "register", json={"auth": auth})
        assert status == 401, error
        validate_response("registration.yaml", "/register", "post", 401, error)
        assert error["completed"] == [] and error["session"] == session
        assert error["flows"] == [{"stages": ["m.login.dummy"]}] and error["params"] == {}
    status, error = await api.request(
        "POST", "register", json={"auth": {**DUMMY, "session": "no-such-session"}}
    )
    assert (status, error["errcode"]) == (400, "M_UNKNOWN")


async def test_register_guest_is_forbidden(api: MatrixApi) -> None:
    status, error = await api.request(
        "POST", "/_matrix/client/v3/register?kind=guest", json={"auth": DUMMY}
    )
    assert (status, error["errcode"]) == (403, "M_FORBIDDEN")


async def test_register_unknown_auth_type_stays_in_uia(api: MatrixApi) -> None:
    status, error = await api.request(
        "POST", "register", json={"username": "frank", "auth": {"type": "m.login.recaptcha"}}
    )
    assert status == 401
    assert error["flows"] == [{"stages": ["m.login.dummy"]}]
    assert error["completed"] == [] and error["errcode"] == "M_UNRECOGNIZED"


async def test_closed_registration_is_forbidden(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    server = await make_homeserver(overrides={"registration.enabled": False})
    api = MatrixApi(server.url, http)
    status, error = await api.request(
        "POST", "register", json={"username": "gina", "password": PASSWORD, "auth": DUMMY}
    )
    assert (status, error["errcode"]) == (403, "M_FORBIDDEN")


async def test_register_available(api: MatrixApi) -> None:
    path = "/_matrix/client/v3/register/available"
    assert await api.request("GET", path + "?username=henry") == (200, {"available": True})
    await api.register("henry")
    status, error = await api.request("GET", path + "?username=henry")
    assert (status, error["errcode"]) == (400, "M_USER_IN_USE")
    status, error = await api.request("GET", path + "?username=Henry!")
    assert (status, error["errcode"]) == (400, "M_INVALID_USERNAME")
    status, error = await api.request("GET", path)
    assert (status, error["errcode"]) == (400, "M_MISSING_PARAM")


async def test_login_flows(api: MatrixApi) -> None:
    # Synapse lists the application service type to everyone, as here (it needs an as_token).
    assert await api.request("GET", "login") == (200, {"flows": [
        {"type": "m.login.password"}, {"type": "m.login.application_service"},
    ]})


async def test_login_with_localpart_full_id_and_deprecated_user(api: MatrixApi) -> None:
    user = await api.register("ivy")
    bodies = [
        password_login("ivy"),
        password_login(user.user_id),
        {"type": "m.login.password", "user": "ivy", "password": PASSWORD},
    ]
    tokens = set()
    for body in bodies:
        status, result = await api.request("POST", "login", json=body)
        assert status == 200, result
        validate_response("login.yaml", "/login", "post", 200, result)
        assert result["user_id"] == user.user_id
        assert result["device_id"] != user.device_id
        tokens.add(result["access_token"])
        assert (await whoami(api, result["access_token"]))[0] == 200
    assert len(tokens) == 3


async def test_login_on_existing_device_replaces_its_token(api: MatrixApi) -> None:
    user = await api.register("jack")
    status, result = await api.request(
        "POST", "login", json=password_login("jack", device_id=user.device_id)
    )
    assert status == 200
    assert result["device_id"] == user.device_id
    status, error = await whoami(api, user.token)
    assert (status, error["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    assert (await whoami(api, result["access_token"]))[0] == 200


@pytest.mark.parametrize("who", ["kim", "nobody"])
async def test_login_wrong_password_or_unknown_user_is_forbidden(
    api: MatrixApi, who: str
) -> None:
    await api.register("kim")
    status, error = await api.request("POST", "login", json=password_login(who, "wrong"))
    assert (status, error["errcode"]) == (403, "M_FORBIDDEN")


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"type": "m.login.token", "token": "x"}, "M_UNKNOWN"),
        ({"type": "m.login.password", "password": PASSWORD}, "M_MISSING_PARAM"),
        ({"type": "m.login.password", "identifier": {"type": "m.id.phone"},
          "password": PASSWORD}, "M_UNKNOWN"),
        ({"type": 1}, "M_BAD_JSON"),
        ({"type": "m.login.password", "identifier": "lee", "password": PASSWORD}, "M_BAD_JSON"),
        (password_login("lee", device_id=7), "M_BAD_JSON"),
        ({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "lee"}},
         "M_BAD_JSON"),
    ],
)
async def test_login_bad_requests(api: MatrixApi, body: dict[str, Any], errcode: str) -> None:
    status, error = await api.request("POST", "login", json=body)
    assert (status, error["errcode"]) == (400, errcode)


async def test_login_failures_are_rate_limited(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    server = await make_homeserver(overrides={
        "rate_limits.enabled": True,
        "rate_limits.login_failures": {"per_second": 0.001, "burst": 3},
    })
    api = MatrixApi(server.url, http)
    await api.register("mia")
    for _ in range(3):
        status, error = await api.request("POST", "login", json=password_login("mia", "nope"))
        assert (status, error["errcode"]) == (403, "M_FORBIDDEN")
    # Once the bucket is empty even the right password is refused.
    for body in (password_login("mia", "nope"), password_login("mia")):
        status, error = await api.request("POST", "login", json=body)
        assert (status, error["errcode"]) == (429, "M_LIMIT_EXCEEDED")
        assert isinstance(error["retry_after_ms"], int) and error["retry_after_ms"] > 0


async def test_logout_kills_only_that_token(api: MatrixApi) -> None:
    user = await api.register("ned")
    status, other = await api.request("POST", "login", json=password_login("ned"))
    assert status == 200
    assert (await whoami(api, user.token))[0] == 200  # cached now, must still be revoked
    assert await api.request("POST", "logout", json={}, token=user.token) == (200, {})
    status, error = await whoami(api, user.token)
    assert (status, error["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    assert (await whoami(api, other["access_token"]))[0] == 200


async def test_logout_all_kills_every_device(api: MatrixApi) -> None:
    user = await api.register("olga")
    tokens = [user.token]
    for _ in range(2):
        status, result = await api.request("POST", "login", json=password_login("olga"))
        assert status == 200
        tokens.append(result["access_token"])
    for token in tokens:
        assert (await whoami(api, token))[0] == 200
    assert await api.request("POST", "logout/all", json={}, token=tokens[1]) == (200, {})
    for token in tokens:
        status, error = await whoami(api, token)
        assert (status, error["errcode"]) == (401, "M_UNKNOWN_TOKEN")


async def test_missing_and_unknown_tokens(api: MatrixApi) -> None:
    status, error = await api.request("GET", "account/whoami")
    assert (status, error["errcode"]) == (401, "M_MISSING_TOKEN")
    for token in ("mat_made_up", "syt_other_format"):
        status, error = await whoami(api, token)
        assert (status, error["errcode"]) == (401, "M_UNKNOWN_TOKEN")


async def test_access_token_in_query_string(api: MatrixApi) -> None:
    user = await api.register("pia")
    status, me = await api.request("GET", "account/whoami", params={"access_token": user.token})
    assert (status, me["user_id"]) == (200, user.user_id)


@pytest.mark.parametrize(
    ("raw", "errcode"),
    [(b"{not json", "M_NOT_JSON"), (b"[1, 2]", "M_BAD_JSON"), (b'"alice"', "M_BAD_JSON")],
)
@pytest.mark.parametrize("path", ["register", "login"])
async def test_malformed_bodies(api: MatrixApi, path: str, raw: bytes, errcode: str) -> None:
    status, error = await api.request("POST", path, raw=raw,
                                      headers={"Content-Type": "application/json"})
    assert (status, error["errcode"]) == (400, errcode)


@pytest.mark.parametrize(
    "field", [{"username": 5}, {"password": ["x"]}, {"device_id": {}}, {"inhibit_login": "yes"},
              {"auth": "dummy"}, {"initial_device_display_name": 3}],
)
async def test_register_wrong_field_types(api: MatrixApi, field: dict[str, Any]) -> None:
    body = {"username": "quinn", "password": PASSWORD, "auth": DUMMY, **field}
    status, error = await api.request("POST", "register", json=body)
    assert (status, error["errcode"]) == (400, "M_BAD_JSON")


async def test_tokens_and_passwords_are_stored_hashed(
    homeserver: RunningServer, api: MatrixApi
) -> None:
    user: User = await api.register("rosa")
    db = homeserver.hs.db
    assert db is not None
    async with db.connection() as conn:
        hashes = [r["token_hash"] for r in await conn.fetch("SELECT token_hash FROM access_tokens")]
        password_hash = await conn.fetchval(
            "SELECT password_hash FROM users WHERE user_id = $1", user.user_id
        )
    assert len(hashes) == 1
    assert all(user.token.encode() not in bytes(h) for h in hashes)
    assert password_hash.startswith("$argon2id$")
    assert PASSWORD not in password_hash
