"""The caps on other servers one request and one user may make us contact."""

from __future__ import annotations

import pytest

from homeserver.config import FederationConfig
from homeserver.errors import MatrixError
from homeserver.services.remote_server_limits import RemoteServerLimits
from tests.fake_clock import FakeClock

CONFIG = FederationConfig(
    max_servers_per_request=3, max_servers_per_user=5, servers_per_user_period_ms=60_000
)


async def no_shared_servers(user_id: str) -> set[str]:
    return set()


def limits(clock: FakeClock) -> RemoteServerLimits:
    return RemoteServerLimits(
        "us.example", CONFIG, clock=clock, max_users=2, shared_servers=no_shared_servers
    )


def servers(*numbers: int) -> list[str]:
    return [f"s{n}.example" for n in numbers]


def test_a_request_over_the_per_request_cap_is_too_large() -> None:
    check = limits(FakeClock()).check
    check("@a:us.example", [*servers(1, 2, 3), "us.example"])  # our own server is free
    with pytest.raises(MatrixError) as info:
        check("@a:us.example", servers(4, 5, 6, 7))
    assert (info.value.status, info.value.errcode) == (413, "M_TOO_LARGE")


def test_each_user_has_a_budget_of_distinct_servers_per_period() -> None:
    clock = FakeClock()
    check = limits(clock).check
    check("@a:us.example", servers(1, 2, 3))
    check("@a:us.example", servers(1, 2, 3))  # the same servers again cost nothing
    check("@a:us.example", servers(3, 4, 5))
    clock.advance(20.0)
    with pytest.raises(MatrixError) as info:
        check("@a:us.example", servers(6))
    assert (info.value.status, info.value.errcode) == (429, "M_LIMIT_EXCEEDED")
    assert info.value.to_json()["retry_after_ms"] == 40_000
    check("@a:us.example", servers(1, 5))  # counted ones still go through
    check("@b:us.example", servers(6, 7, 8))  # another user has a budget of their own
    clock.advance(40.0)
    check("@a:us.example", servers(6, 7, 8))  # a new window


def test_a_refused_request_counts_nothing() -> None:
    check = limits(FakeClock()).check
    check("@a:us.example", servers(1, 2, 3))
    with pytest.raises(MatrixError):
        check("@a:us.example", servers(4, 5, 6))
    check("@a:us.example", servers(4, 5))


def test_only_the_most_recently_active_users_are_remembered() -> None:
    check = limits(FakeClock()).check
    check("@a:us.example", servers(1, 2, 3))
    check("@a:us.example", servers(4, 5))
    check("@b:us.example", servers(1))
    check("@c:us.example", servers(1))  # @a, the least recently active of three, is forgotten
    check("@a:us.example", servers(6, 7, 8))
