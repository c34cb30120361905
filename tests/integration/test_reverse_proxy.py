"""Clients behind reverse proxies (`http.trusted_proxies`, issue 19): what the server records
and limits is the forwarded client address from a trusted proxy, and the peer's own address
from anyone else, whatever headers they forge.

Proxies and clients are loopback addresses of their own (tests/loopback_clients.py).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest

from tests.auth_flows import password_login
from tests.helpers import MatrixApi, User
from tests.loopback_clients import client_at

if TYPE_CHECKING:
    from tests.conftest import MakeServer

pytestmark = pytest.mark.usefixtures("no_server_errors")

XFF = "X-Forwarded-For"
# Two proxies one behind the other (127.0.0.2 and 127.0.0.3); 127.0.0.1 is anyone else.
CHAINED_PROXIES = {"http.trusted_proxies": ["127.0.0.2/31"]}
UNLIMITED = {"per_second": 100_000, "burst": 100_000}


def forwarded(chain: str | None) -> dict[str, str] | None:
    return {XFF: chain} if chain is not None else None


async def seen_at(api: MatrixApi, user: User, chain: str | None) -> str:
    """The last-seen address of a fresh device of `user` logged in, and then used (its token's
    first use records the address again), through `api` with X-Forwarded-For `chain`, as
    /devices and the admin whois both report it."""
    headers = forwarded(chain)
    status, session = await api.request(
        "POST", "login", json=password_login(user.user_id), headers=headers
    )
    assert status == 200, session
    token, device_id = session["access_token"], session["device_id"]
    device = await api.ok("GET", f"devices/{device_id}", token=token, headers=headers)
    whois = await api.ok("GET", f"admin/whois/{user.user_id}", token=token, headers=headers)
    connections = [
        connection["ip"] for s in whois["devices"][device_id]["sessions"]
        for connection in s["connections"]
    ]
    assert connections == [device["last_seen_ip"]], (connections, device)
    return str(device["last_seen_ip"])


async def test_devices_are_last_seen_at_the_forwarded_address(make_homeserver: MakeServer) -> None:
    """The default trusts the proxy on 127.0.0.1; nginx appends the address it saw to what
    the client sent, and that last entry is the client."""
    server = await make_homeserver()
    async with client_at(server, "127.0.0.1") as proxy:
        user = await proxy.register("pia")
        assert await seen_at(proxy, user, "198.51.100.1, 203.0.113.5") == "203.0.113.5"
        assert await seen_at(proxy, user, "2001:db8::7") == "2001:db8::7"
        assert await seen_at(proxy, user, None) == "127.0.0.1"


async def test_a_chain_of_trusted_proxies_is_walked_from_the_right(
    make_homeserver: MakeServer,
) -> None:
    server = await make_homeserver(CHAINED_PROXIES)
    async with client_at(server, "127.0.0.3") as inner, client_at(server, "127.0.0.1") as other:
        user = await other.register("quin")
        assert await seen_at(inner, user, "10.9.9.9, 203.0.113.5, 127.0.0.2") == "203.0.113.5"
        # Only proxies in the chain: the left-most is the client.
        assert await seen_at(inner, user, "127.0.0.2, 127.0.0.3") == "127.0.0.2"
        # A malformed chain is no way to become anyone: the request is the proxy's own.
        assert await seen_at(inner, user, "203.0.113.5, bogus") == "127.0.0.3"


async def test_forged_headers_from_an_untrusted_peer_are_ignored(
    make_homeserver: MakeServer,
) -> None:
    server = await make_homeserver(CHAINED_PROXIES)
    async with client_at(server, "127.0.0.1") as forger:
        user = await forger.register("rex")
        assert await seen_at(forger, user, "203.0.113.5") == "127.0.0.1"


async def test_the_access_log_names_the_forwarded_address(
    make_homeserver: MakeServer, caplog: pytest.LogCaptureFixture,
) -> None:
    server = await make_homeserver(CHAINED_PROXIES)
    async with client_at(server, "127.0.0.2") as proxy, client_at(server, "127.0.0.1") as forger:
        with caplog.at_level(logging.INFO, logger="homeserver.access"):
            await proxy.ok("GET", "login", headers={XFF: "203.0.113.5"})
            await forger.ok("GET", "login", headers={XFF: "203.0.113.6"})
    lines = [r.getMessage() for r in caplog.records if r.name == "homeserver.access"]
    assert any(" 203.0.113.5 GET /_matrix/client/v3/login " in line for line in lines), lines
    assert any(" 127.0.0.1 GET /_matrix/client/v3/login " in line for line in lines), lines
    assert not any("203.0.113.6" in line for line in lines), lines


async def test_failed_logins_are_limited_per_forwarded_address(
    make_homeserver: MakeServer,
) -> None:
    """Two clients behind one proxy have a failure budget each (one attacker does not lock
    out everyone behind the proxy), and a peer that is not a proxy cannot buy fresh budgets
    by naming other addresses."""
    server = await make_homeserver({
        "rate_limits.enabled": True, "rate_limits.per_ip": UNLIMITED,
        "rate_limits.login_failures": UNLIMITED, "rate_limits.registration": UNLIMITED,
        "rate_limits.login_failures_per_ip": {"per_second": 0.001, "burst": 2},
    })

    async def failed_login(api: MatrixApi, forwarded: str) -> int:
        status, _ = await api.request(
            "POST", "login", json=password_login("sam", "wrong"), headers={XFF: forwarded}
        )
        return status

    async with client_at(server, "127.0.0.1") as proxy:
        await proxy.register("sam")
        assert [await failed_login(proxy, "203.0.113.5") for _ in range(3)] == [403, 403, 429]
        assert await failed_login(proxy, "203.0.113.6") == 403
        assert await failed_login(proxy, "198.51.100.1, 203.0.113.6") == 403
        assert await failed_login(proxy, "203.0.113.6") == 429
    async with client_at(server, "127.0.0.3") as forger:
        statuses = [await failed_login(forger, f"192.0.2.{i}") for i in range(3)]
        assert statuses == [403, 403, 429]
