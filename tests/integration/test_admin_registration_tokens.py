"""Registration tokens: the admin API that manages them (Synapse's
docs/admin_api/registration_tokens.md), the `m.login.registration_token` stage that
`registration.require_token` puts before `m.login.dummy` in POST /register, and the spec's
validity endpoint."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp
import pytest

from tests.admin_api import ADMIN, admin_ok, make_admin
from tests.conftest import MakeServer, RunningServer
from tests.fake_clock import FakeClock
from tests.helpers import PASSWORD, MatrixApi, User

pytestmark = pytest.mark.usefixtures("no_server_errors")

TOKENS = "/v1/registration_tokens"
VALIDITY = "/_matrix/client/v1/register/m.login.registration_token/validity"
TOKEN_STAGE = "m.login.registration_token"
TOKEN_FLOWS = [{"stages": [TOKEN_STAGE, "m.login.dummy"]}]
SESSION_LIFETIME_S = 15 * 60


class Setup:
    """A server that requires tokens, on a clock the test moves, with an admin."""

    def __init__(self, server: RunningServer, api: MatrixApi, admin: User, clock: FakeClock):
        self.server, self.api, self.admin, self.clock = server, api, admin, clock

    async def new_token(self, **body: Any) -> str:
        created = await admin_ok(self.api, self.admin, "POST", TOKENS + "/new", json=body)
        token: str = created["token"]
        return token

    async def token(self, token: str) -> dict[str, Any]:
        body: dict[str, Any] = await admin_ok(self.api, self.admin, "GET", f"{TOKENS}/{token}")
        return body

    async def start(self, username: str) -> str:
        """A registration session for `username`: the first challenge lists the token flow."""
        status, body = await self.api.request(
            "POST", "register", json={"username": username, "password": PASSWORD}
        )
        assert (status, body["flows"]) == (401, TOKEN_FLOWS), body
        session: str = body["session"]
        return session

    async def stage(self, session: str, auth_type: str, **auth: Any) -> tuple[int, Any]:
        return await self.api.request(
            "POST", "register", json={"auth": {"type": auth_type, "session": session, **auth}}
        )

    async def valid(self, token: str) -> bool:
        body = await self.api.ok("GET", VALIDITY, params={"token": token})
        return bool(body["valid"])


@pytest.fixture
async def setup(make_homeserver: MakeServer, http: aiohttp.ClientSession) -> Setup:
    clock = FakeClock()
    server = await make_homeserver({"registration.require_token": True}, clock=clock)
    api = MatrixApi(server.url, http)
    return Setup(server, api, await make_admin(server, api), clock)


async def test_registering_with_a_token(setup: Setup) -> None:
    token = await setup.new_token(uses_allowed=2)
    session = await setup.start("alice")

    status, body = await setup.stage(session, TOKEN_STAGE, token=token)
    assert (status, body["completed"], body["flows"]) == (401, [TOKEN_STAGE], TOKEN_FLOWS)
    assert "errcode" not in body
    assert (await setup.token(token))["pending"] == 1

    status, body = await setup.stage(session, "m.login.dummy")
    assert (status, body["user_id"]) == (200, "@alice:localhost"), body
    assert "access_token" in body
    counts = await setup.token(token)
    assert (counts["pending"], counts["completed"]) == (0, 1)

    # A client that lost the answer completes the session again: the same user, counted once.
    status, again = await setup.stage(session, "m.login.dummy")
    assert (status, again["user_id"]) == (200, "@alice:localhost")
    counts = await setup.token(token)
    assert (counts["pending"], counts["completed"]) == (0, 1)
    assert await setup.valid(token)  # one use of two is left


async def test_without_a_token_there_is_no_account(setup: Setup) -> None:
    token = await setup.new_token()
    session = await setup.start("bob")
    status, body = await setup.stage(session, "m.login.dummy")
    assert (status, body["completed"], body["flows"]) == (401, ["m.login.dummy"], TOKEN_FLOWS)

    for wrong in ("nonexistent", token + "x"):
        status, body = await setup.stage(session, TOKEN_STAGE, token=wrong)
        assert (status, body["errcode"], body["completed"]) == (
            401, "M_UNAUTHORIZED", ["m.login.dummy"]
        )
    status, body = await setup.stage(session, TOKEN_STAGE)
    assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")
    status, body = await setup.api.request("POST", "register", json={
        "username": "bob2", "auth": {"type": "m.login.dummy"},
    })
    assert (status, body["flows"]) == (401, TOKEN_FLOWS)
    status, _ = await setup.api.request("GET", "register/available", params={"username": "bob"})
    assert status == 200  # nobody registered bob

    # The stages in either order: the token, passed last, registers.
    status, body = await setup.stage(session, TOKEN_STAGE, token=token)
    assert (status, body["user_id"]) == (200, "@bob:localhost"), body
    assert (await setup.token(token))["completed"] == 1


async def test_a_used_up_token_is_refused(setup: Setup) -> None:
    token = await setup.new_token(uses_allowed=1)
    first = await setup.start("carol")
    assert (await setup.stage(first, TOKEN_STAGE, token=token))[0] == 401
    # The pending use counts: the token is used up before carol finishes.
    assert not await setup.valid(token)
    assert (await setup.stage(first, "m.login.dummy"))[0] == 200

    second = await setup.start("dave")
    status, body = await setup.stage(second, TOKEN_STAGE, token=token)
    assert (status, body["errcode"]) == (401, "M_UNAUTHORIZED")
    invalid = await admin_ok(setup.api, setup.admin, "GET", TOKENS, params={"valid": "false"})
    assert [t["token"] for t in invalid["registration_tokens"]] == [token]


async def test_an_expired_token_is_refused(setup: Setup) -> None:
    token = await setup.new_token(expiry_time=setup.clock.ms + 60_000)
    assert await setup.valid(token)
    setup.clock.advance(61)
    assert not await setup.valid(token)
    session = await setup.start("erin")
    status, body = await setup.stage(session, TOKEN_STAGE, token=token)
    assert (status, body["errcode"]) == (401, "M_UNAUTHORIZED")


async def test_racing_for_the_last_use_exactly_one_wins(setup: Setup) -> None:
    token = await setup.new_token(uses_allowed=3)
    for name in ("f1", "f2"):
        session = await setup.start(name)
        await setup.stage(session, TOKEN_STAGE, token=token)
        assert (await setup.stage(session, "m.login.dummy"))[0] == 200

    sessions = [await setup.start(f"racer{i}") for i in range(6)]
    answers = await asyncio.gather(
        *(setup.stage(session, TOKEN_STAGE, token=token) for session in sessions)
    )
    winners = [s for s, (_, body) in zip(sessions, answers, strict=True) if "errcode" not in body]
    assert len(winners) == 1, answers
    assert sorted(body.get("errcode", "") for _, body in answers) == ["", *["M_UNAUTHORIZED"] * 5]
    assert (await setup.stage(winners[0], "m.login.dummy"))[0] == 200
    counts = await setup.token(token)
    assert (counts["pending"], counts["completed"], counts["uses_allowed"]) == (0, 3, 3)


async def test_one_session_holds_one_use(setup: Setup) -> None:
    token = await setup.new_token(uses_allowed=2)
    session = await setup.start("ivy")
    answers = await asyncio.gather(
        *(setup.stage(session, TOKEN_STAGE, token=token) for _ in range(4))
    )
    assert [status for status, _ in answers] == [401] * 4
    assert all(body["completed"] == [TOKEN_STAGE] for _, body in answers), answers
    assert (await setup.token(token))["pending"] == 1
    assert (await setup.stage(session, "m.login.dummy"))[0] == 200
    counts = await setup.token(token)
    assert (counts["pending"], counts["completed"]) == (0, 1)


async def test_an_abandoned_session_gives_its_use_back(setup: Setup) -> None:
    token = await setup.new_token(uses_allowed=1)
    abandoned = await setup.start("gina")
    await setup.stage(abandoned, TOKEN_STAGE, token=token)
    assert not await setup.valid(token)

    setup.clock.advance(SESSION_LIFETIME_S + 1)
    session = await setup.start("hank")  # a new session sweeps the expired ones
    assert (await setup.token(token))["pending"] == 0
    status, _ = await setup.stage(session, TOKEN_STAGE, token=token)
    assert status == 401
    assert (await setup.stage(session, "m.login.dummy"))[0] == 200


async def test_validity_endpoint(make_homeserver: MakeServer, http: aiohttp.ClientSession) -> None:
    server = await make_homeserver({
        "rate_limits.enabled": True,
        "rate_limits.registration_token_validity": {"per_second": 0.001, "burst": 3},
    })
    api = MatrixApi(server.url, http)
    admin = await make_admin(server, api)
    created = await admin_ok(api, admin, "POST", TOKENS + "/new", json={})
    assert (await api.ok("GET", VALIDITY, params={"token": created["token"]}))["valid"] is True
    assert (await api.ok("GET", VALIDITY, params={"token": "unknown"}))["valid"] is False
    status, body = await api.request("GET", VALIDITY)
    assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")
    status, body = await api.request("GET", VALIDITY, params={"token": created["token"]})
    assert (status, body["errcode"]) == (429, "M_LIMIT_EXCEEDED")
    assert body["retry_after_ms"] > 0

    closed = await make_homeserver({"registration.enabled": False})
    status, body = await MatrixApi(closed.url, http).request(
        "GET", VALIDITY, params={"token": "anything"}
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_admin_creates_reads_changes_and_deletes_tokens(setup: Setup) -> None:
    api, admin = setup.api, setup.admin
    generated = await admin_ok(api, admin, "POST", TOKENS + "/new", json={})
    assert re.fullmatch(r"[A-Za-z0-9._~-]{16}", generated["token"])
    assert generated | {"token": ""} == {
        "token": "", "uses_allowed": None, "pending": 0, "completed": 0, "expiry_time": None,
    }
    long = await admin_ok(api, admin, "POST", TOKENS + "/new", json={"length": 64})
    assert len(long["token"]) == 64
    expiry = setup.clock.ms + 3_600_000
    given = await admin_ok(api, admin, "POST", TOKENS + "/new", json={
        "token": "a.b_c~d-E9", "uses_allowed": 1, "expiry_time": expiry,
    })
    assert given == {
        "token": "a.b_c~d-E9", "uses_allowed": 1, "pending": 0, "completed": 0,
        "expiry_time": expiry,
    }
    assert await setup.token("a.b_c~d-E9") == given

    listed = await admin_ok(api, admin, "GET", TOKENS)
    assert sorted(t["token"] for t in listed["registration_tokens"]) == sorted(
        [generated["token"], long["token"], "a.b_c~d-E9"]
    )

    changed = await admin_ok(api, admin, "PUT", f"{TOKENS}/a.b_c~d-E9", json={"uses_allowed": 0})
    assert changed == given | {"uses_allowed": 0}  # expiry_time, not given, is kept
    invalid = await admin_ok(api, admin, "GET", TOKENS, params={"valid": "false"})
    assert [t["token"] for t in invalid["registration_tokens"]] == ["a.b_c~d-E9"]
    valid = await admin_ok(api, admin, "GET", TOKENS, params={"valid": "true"})
    assert "a.b_c~d-E9" not in [t["token"] for t in valid["registration_tokens"]]
    changed = await admin_ok(api, admin, "PUT", f"{TOKENS}/a.b_c~d-E9", json={
        "uses_allowed": None, "expiry_time": None,
    })
    assert (changed["uses_allowed"], changed["expiry_time"]) == (None, None)
    assert await setup.valid("a.b_c~d-E9")

    assert await admin_ok(api, admin, "DELETE", f"{TOKENS}/a.b_c~d-E9") == {}
    for method in ("GET", "PUT", "DELETE"):
        status, body = await api.request(
            method, f"{ADMIN}{TOKENS}/a.b_c~d-E9", token=admin.token, json={}
        )
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND"), method


@pytest.mark.parametrize("body", [
    {"token": "has space"}, {"token": "x" * 65}, {"token": ""}, {"token": "é"}, {"token": 5},
    {"uses_allowed": -1}, {"uses_allowed": "1"}, {"uses_allowed": 1.5}, {"uses_allowed": True},
    {"uses_allowed": 2**40}, {"expiry_time": 1}, {"expiry_time": "soon"},
    {"expiry_time": 2**70}, {"length": 0}, {"length": 65}, {"length": "16"},
])
async def test_bad_new_tokens_are_invalid_params(setup: Setup, body: dict[str, Any]) -> None:
    status, error = await setup.api.request(
        "POST", f"{ADMIN}{TOKENS}/new", token=setup.admin.token, json=body
    )
    assert (status, error["errcode"]) == (400, "M_INVALID_PARAM"), body


async def test_bad_requests_are_refused(setup: Setup) -> None:
    api, admin = setup.api, setup.admin
    await setup.new_token(token="taken")
    status, error = await api.request(
        "POST", f"{ADMIN}{TOKENS}/new", token=admin.token, json={"token": "taken"}
    )
    assert (status, error["errcode"]) == (400, "M_INVALID_PARAM")
    for body in ({"uses_allowed": -3}, {"expiry_time": 5}, {"expiry_time": []}):
        status, error = await api.request(
            "PUT", f"{ADMIN}{TOKENS}/taken", token=admin.token, json=body
        )
        assert (status, error["errcode"]) == (400, "M_INVALID_PARAM"), body
    status, error = await api.request("GET", ADMIN + TOKENS, token=admin.token,
                                      params={"valid": "yes"})
    assert (status, error["errcode"]) == (400, "M_INVALID_PARAM")
    status, error = await api.request(
        "POST", f"{ADMIN}{TOKENS}/new", token=admin.token, raw=b"not json"
    )
    assert (status, error["errcode"]) == (400, "M_NOT_JSON")
    assert (await setup.token("taken"))["uses_allowed"] is None  # nothing changed


async def test_only_admins_manage_tokens(setup: Setup) -> None:
    token = await setup.new_token()
    session = await setup.start("user")
    await setup.stage(session, TOKEN_STAGE, token=token)
    status, body = await setup.stage(session, "m.login.dummy")
    user = User(body["user_id"], body["access_token"], body["device_id"])
    for method, path in [
        ("GET", TOKENS), ("POST", TOKENS + "/new"), ("GET", f"{TOKENS}/{token}"),
        ("PUT", f"{TOKENS}/{token}"), ("DELETE", f"{TOKENS}/{token}"),
    ]:
        status, body = await setup.api.request(method, ADMIN + path, token=user.token, json={})
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), (method, path)
    assert (await setup.token(token))["completed"] == 1
