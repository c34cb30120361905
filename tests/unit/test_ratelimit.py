"""The token-bucket rate limiter, driven by an injected clock (no sleeping)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from homeserver.config import RateConfig, RateLimitsConfig
from homeserver.errors import MatrixError
from homeserver.services.ratelimit import RateLimiter, address_key
from tests.fake_clock import FakeClock


def limiter(clock: FakeClock, *, enabled: bool = True) -> RateLimiter:
    config = RateLimitsConfig(
        enabled=enabled, login_failures=RateConfig(per_second=0.5, burst=3)
    )
    return RateLimiter(config, clock)


def refused_after_ms(fn: Callable[[str, str], None], *args: str) -> int:
    """Call `fn(kind, key)`, expect a 429 and return its retry_after_ms."""
    with pytest.raises(MatrixError) as info:
        fn(*args)
    assert (info.value.status, info.value.errcode) == (429, "M_LIMIT_EXCEEDED")
    retry: int = info.value.extra["retry_after_ms"]
    return retry


def test_burst_then_refusal_with_retry_after() -> None:
    clock = FakeClock()
    rl = limiter(clock)
    for _ in range(3):
        rl.check("login_failures", "k")
    # Empty bucket, 0.5 tokens/s: one token is 2 s away.
    assert refused_after_ms(rl.check, "login_failures", "k") == 2000
    clock.advance(1.5)
    assert refused_after_ms(rl.check, "login_failures", "k") == 500


def test_refill_is_proportional_and_capped_at_burst() -> None:
    clock = FakeClock()
    rl = limiter(clock)
    for _ in range(3):
        rl.check("login_failures", "k")
    clock.advance(2.0)
    rl.check("login_failures", "k")
    refused_after_ms(rl.check, "login_failures", "k")
    clock.advance(3600)
    for _ in range(3):
        rl.check("login_failures", "k")
    refused_after_ms(rl.check, "login_failures", "k")


def test_peek_does_not_take_a_token() -> None:
    clock = FakeClock()
    rl = limiter(clock)
    for _ in range(10):
        rl.peek("login_failures", "k")
    for _ in range(3):
        rl.check("login_failures", "k")
    assert refused_after_ms(rl.peek, "login_failures", "k") == 2000


def test_keys_and_kinds_have_separate_buckets() -> None:
    clock = FakeClock()
    rl = limiter(clock)
    for _ in range(3):
        rl.check("login_failures", "a")
    refused_after_ms(rl.check, "login_failures", "a")
    rl.check("login_failures", "b")
    rl.check("registration", "a")


def test_disabled_limiter_never_refuses() -> None:
    rl = limiter(FakeClock(), enabled=False)
    for _ in range(100):
        rl.check("login_failures", "k")
        rl.peek("login_failures", "k")


def test_bucket_cap_evicts_least_recently_used() -> None:
    clock = FakeClock()
    config = RateLimitsConfig(enabled=True, per_ip=RateConfig(per_second=0.001, burst=1))
    rl = RateLimiter(config, clock, max_buckets=2)
    rl.check("per_ip", "a")
    rl.check("per_ip", "b")
    refused_after_ms(rl.peek, "per_ip", "a")  # touches "a": "b" is now the oldest
    rl.check("per_ip", "c")  # a third key evicts "b", not "a"
    assert len(rl._buckets) == 2
    refused_after_ms(rl.check, "per_ip", "a")
    rl.check("per_ip", "b")  # forgotten, so a fresh bucket


def test_an_ipv6_network_counts_as_one_address() -> None:
    """Whoever holds an IPv6 /64 holds all of its addresses: they share one bucket, while
    IPv4 addresses (and IPv4 mapped into IPv6) stay single addresses."""
    assert address_key("2001:db8:1:2::1") == address_key("2001:db8:1:2:ffff::9") == (
        "2001:db8:1:2::/64"
    )
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("192.0.2.7") == "192.0.2.7"
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key("not an address") == "not an address"
