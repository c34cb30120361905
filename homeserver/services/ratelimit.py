"""Token-bucket rate limits: one bucket per (kind, key), a kind per `rate_limits.*` setting
(event sends and per-user data writes per user; unauthenticated requests, registrations and
failed password checks per client address).

Buckets live in memory: a restart forgives everyone, which is the right failure direction for
a limiter. Memory is bounded by a hard cap on buckets with least-recently-used eviction, so a
flood of new keys (addresses, user IDs) costs O(1) per request and forgets the idlest keys
first. Benchmarks switch the whole thing off with `rate_limits.enabled: false`.
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict
from dataclasses import dataclass

from homeserver import metrics
from homeserver.config import RateConfig, RateLimitsConfig
from homeserver.errors import limit_exceeded
from homeserver.services.clock import Clock
from homeserver.services.requester import Requester

MAX_BUCKETS = 100_000


def address_key(ip: str) -> str:
    """What a client address counts as for the limits: an IPv4 address as it is, an IPv6
    address as its /64 (one subscriber's network: whoever holds one has all of its 2**64
    addresses, and would otherwise get a fresh bucket, and evict others', with each)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if address.version == 4:
        return ip
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.ip_network(f"{address}/64", strict=False))


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(
        self, config: RateLimitsConfig, clock: Clock,
        *, max_buckets: int = MAX_BUCKETS,
    ) -> None:
        self.config = config
        self.clock = clock
        self.max_buckets = max_buckets
        # Least recently used first: eviction pops from the front.
        self._buckets: OrderedDict[tuple[str, str], _Bucket] = OrderedDict()

    def _rate(self, kind: str) -> RateConfig:
        rate: RateConfig = getattr(self.config, kind)
        return rate

    def _refill(self, kind: str, key: str) -> tuple[_Bucket, RateConfig]:
        rate = self._rate(kind)
        now = self.clock.monotonic()
        bucket = self._buckets.get((kind, key))
        if bucket is None:
            bucket = self._buckets[(kind, key)] = _Bucket(float(rate.burst), now)
            while len(self._buckets) > self.max_buckets:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end((kind, key))
        bucket.tokens = min(rate.burst, bucket.tokens + (now - bucket.updated) * rate.per_second)
        bucket.updated = now
        return bucket, rate

    def _refuse_below(self, kind: str, bucket: _Bucket, rate: RateConfig, needed: float) -> None:
        if bucket.tokens < needed:
            metrics.RATE_LIMITED.labels(kind).inc()
            wait_s = (needed - bucket.tokens) / rate.per_second if rate.per_second > 0 else 3600
            raise limit_exceeded(max(1, math.ceil(wait_s * 1000)))

    def check(self, kind: str, key: str) -> None:
        """Take a token from the bucket (kind, key) or raise 429 M_LIMIT_EXCEEDED."""
        if not self.config.enabled:
            return
        bucket, rate = self._refill(kind, key)
        self._refuse_below(kind, bucket, rate, 1.0)
        bucket.tokens -= 1.0

    def check_user(self, kind: str, requester: Requester) -> None:
        """`check` with the requester's user as the key; an application service registered
        `rate_limited: false` is never limited, whoever it acts as."""
        if requester.rate_limited:
            self.check(kind, requester.user_id)

    def peek(self, kind: str, key: str) -> None:
        """Raise if the bucket is empty, without taking a token (for login failures: only a
        failed attempt costs, but an exhausted bucket refuses even a correct password)."""
        if not self.config.enabled:
            return
        bucket, rate = self._refill(kind, key)
        self._refuse_below(kind, bucket, rate, 1.0)

    def charge(self, kind: str, key: str) -> None:
        """Take a token that is owed (a failure that already happened), even below zero:
        failures that raced past `peek` together still all count."""
        if not self.config.enabled:
            return
        bucket, _ = self._refill(kind, key)
        bucket.tokens -= 1.0
