"""Password checks and anonymous requests under attack (issue 22 item 4), over HTTP.

Clients come from different loopback addresses (all of 127/8 is loopback on Linux), so the
server sees them as different client addresses.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from tests.auth_flows import password_login
from tests.helpers import PASSWORD, MatrixApi
from tests.loopback_clients import client_at

if TYPE_CHECKING:
    from tests.conftest import MakeServer, RunningServer

ATTACKER, VICTIM, OTHER = "127.0.0.2", "127.0.0.3", "127.0.0.4"
# Unlimited but for the limit a test is about.
NO_LIMIT = {"per_second": 100_000, "burst": 100_000}
# Bound only a hang: what a test waits for happens at once or never.
DEADLINE_S = 30.0
HELD_AT_MOST_S = 60.0


async def limited_server(make_homeserver: MakeServer, **limits: Any) -> RunningServer:
    overrides: dict[str, Any] = {"rate_limits.enabled": True}
    for kind in ("per_ip", "login_failures", "login_failures_per_ip", "registration"):
        overrides[f"rate_limits.{kind}"] = limits.pop(kind, NO_LIMIT)
    overrides.update({f"rate_limits.{key}": value for key, value in limits.items()})
    return await make_homeserver(overrides=overrides)


def assert_limited(status: int, error: Any) -> None:
    assert (status, error["errcode"]) == (429, "M_LIMIT_EXCEEDED"), (status, error)
    assert isinstance(error["retry_after_ms"], int) and error["retry_after_ms"] > 0


async def test_invalid_tokens_count_against_the_address(make_homeserver: MakeServer) -> None:
    server = await limited_server(make_homeserver, per_ip={"per_second": 0.001, "burst": 4})
    async with client_at(server, OTHER) as other:
        user = await other.register("tess")
    async with client_at(server, ATTACKER) as attacker:
        for token in ("mat_made_up", "syt_other_format", "mat_x", "mat_y"):
            status, error = await attacker.request("GET", "account/whoami", token=token)
            assert (status, error["errcode"]) == (401, "M_UNKNOWN_TOKEN")
        assert_limited(*await attacker.request("GET", "account/whoami", token="mat_z"))
        # A route that needs no token is no way around it, nor is a malformed header.
        assert_limited(*await attacker.request("GET", "login", token="mat_z"))
        assert_limited(*await attacker.request(
            "GET", "login", headers={"Authorization": "Basic eA=="}
        ))
        assert_limited(*await attacker.request("GET", "login"))
        # A valid token is not limited per address.
        assert (await attacker.request("GET", "account/whoami", token=user.token))[0] == 200


async def test_a_trusted_proxy_names_the_client_address(make_homeserver: MakeServer) -> None:
    """Behind the reverse proxy (on loopback by default) clients keep their own budgets;
    anyone else's X-Forwarded-For is ignored, so it cannot buy fresh budgets."""
    server = await limited_server(make_homeserver, per_ip={"per_second": 0.001, "burst": 2})

    async def whoami(api: MatrixApi, forwarded: str) -> int:
        status, _ = await api.request(
            "GET", "account/whoami", token="mat_junk", headers={"X-Forwarded-For": forwarded}
        )
        return status

    async with client_at(server, "127.0.0.1") as proxy:
        assert [await whoami(proxy, "10.0.0.7") for _ in range(3)] == [401, 401, 429]
        assert await whoami(proxy, "10.9.9.9, 10.0.0.8") == 401  # the proxy's own entry counts
    async with client_at(server, ATTACKER) as attacker:
        statuses = [await whoami(attacker, f"10.1.0.{i}") for i in range(3)]
        assert statuses == [401, 401, 429]
    async with client_at(server, "127.0.0.1") as proxy:
        # An IPv6 client is its /64: every address in it shares one budget.
        statuses = [await whoami(proxy, f"2001:db8:5:6::{i + 1:x}") for i in range(3)]
        assert statuses == [401, 401, 429]
        assert await whoami(proxy, "2001:db8:5:7::1") == 401


async def test_fresh_user_names_hit_the_per_address_failure_limit(
    make_homeserver: MakeServer,
) -> None:
    server = await limited_server(
        make_homeserver, login_failures_per_ip={"per_second": 0.001, "burst": 3}
    )
    async with client_at(server, VICTIM) as victim:
        await victim.register("uma")
    async with client_at(server, ATTACKER) as attacker:
        for name in ("ann", "bob", "cid"):
            status, error = await attacker.request(
                "POST", "login", json=password_login(name, "guess")
            )
            assert (status, error["errcode"]) == (403, "M_FORBIDDEN")
        for name in ("dan", "uma"):
            assert_limited(*await attacker.request(
                "POST", "login", json=password_login(name, "guess")
            ))
    async with client_at(server, VICTIM) as victim:
        assert (await victim.request("POST", "login", json=password_login("uma")))[0] == 200


async def test_failures_from_one_address_do_not_lock_the_user_out_of_another(
    make_homeserver: MakeServer,
) -> None:
    server = await limited_server(
        make_homeserver, login_failures={"per_second": 0.001, "burst": 3}
    )
    async with client_at(server, VICTIM) as victim:
        await victim.register("vic")
    async with client_at(server, ATTACKER) as attacker:
        for _ in range(3):
            status, _ = await attacker.request("POST", "login", json=password_login("vic", "x"))
            assert status == 403
        assert_limited(*await attacker.request("POST", "login", json=password_login("vic")))
    async with client_at(server, VICTIM) as victim:
        status, body = await victim.request("POST", "login", json=password_login("vic"))
        assert status == 200, body


class HeldChecks:
    """The server's argon2 hasher, but a check of any password other than PASSWORD (the
    flood's) waits in its thread until released."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.loop = asyncio.get_running_loop()
        self.entered = asyncio.Event()
        self.release = threading.Event()

    def verify(self, password_hash: str, password: str) -> bool:
        if password != PASSWORD:
            self.loop.call_soon_threadsafe(self.entered.set)
            self.release.wait(HELD_AT_MOST_S)
        result: bool = self.real.verify(password_hash, password)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


async def test_a_login_flood_from_one_address_does_not_delay_another(
    make_homeserver: MakeServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """60 logins fired at once from one address; a real login from another, sent while they
    are in the server, is answered while the flood's password check is still running. Only
    the per-address cap on password checks is on: the other limits would otherwise stop the
    flood first.

    No wall-clock bound: the flood's check is held in its thread until the real login has its
    answer, so the order is certain. Had the flood's checks taken every thread (no cap per
    address), the real login would wait behind them and get no answer while they are held."""
    server = await limited_server(make_homeserver)
    async with client_at(server, VICTIM) as victim:
        await victim.register("rea", PASSWORD)
        # Makes the hash unknown users are checked against: each junk login is then one check.
        status, _ = await victim.request("POST", "login", json=password_login("nobody", "x"))
        assert status == 403
    passwords = server.hs.accounts._passwords
    held = HeldChecks(passwords._hasher)
    monkeypatch.setattr(passwords, "_hasher", held)

    async with client_at(server, ATTACKER) as attacker, client_at(server, VICTIM) as victim:
        junk = [password_login(f"x{i}", "x") for i in range(60)]
        floods = [asyncio.create_task(attacker.request("POST", "login", json=j)) for j in junk]
        try:
            async with asyncio.timeout(DEADLINE_S):  # bounds a hang, not a speed
                await held.entered.wait()  # the server holds the flood: one check runs
                status, body = await victim.request("POST", "login", json=password_login("rea"))
            assert status == 200, body
            assert not all(flood.done() for flood in floods)  # the held check's request
        finally:
            held.release.set()
        async with asyncio.timeout(DEADLINE_S):
            statuses = Counter(status for status, _ in await asyncio.gather(*floods))
    # The address's checks beyond the cap were refused at once, the others ran.
    assert set(statuses) == {403, 429} and statuses[403] <= 2, statuses


async def test_registration_challenges_count_against_the_address(
    make_homeserver: MakeServer,
) -> None:
    """A registration request without `auth` opens a session row and may hash a password:
    each counts against the address's registration budget, not only completed ones."""
    server = await limited_server(make_homeserver, registration={"per_second": 0.001, "burst": 3})
    async with client_at(server, ATTACKER) as attacker:
        for i in range(3):
            status, body = await attacker.request(
                "POST", "register", json={"username": f"u{i}", "password": "pw-long-enough-1"}
            )
            assert status == 401, body
        assert_limited(*await attacker.request(
            "POST", "register", json={"username": "u9", "password": "pw-long-enough-1"}
        ))
    async with client_at(server, OTHER) as other:
        await other.register("unhindered")
