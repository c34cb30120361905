"""The retry schedule of a destination that failed: how long to wait after n failures (a
federation destination, a push gateway).

Pure (no clock, no I/O): the sender passes the time in. The delay doubles from ``base_s`` with
each consecutive failure and stops at ``max_s``, minutes rather than the hours or days some
servers reach: a peer back from an outage should get its backlog within minutes even when it
sends us nothing, and one that does contact us resets the schedule at once (the sender's
``peer_is_back``).
"""

from __future__ import annotations

from dataclasses import dataclass

# 2.0 ** n overflows a float past n = 1023; the cap is reached long before this exponent.
_MAX_EXPONENT = 64


@dataclass(frozen=True, slots=True)
class Backoff:
    base_s: float = 1.0
    max_s: float = 300.0

    def delay_s(self, failures: int) -> float:
        """The wait after ``failures`` consecutive failures (0 for a healthy destination)."""
        if failures <= 0:
            return 0.0
        return min(self.max_s, self.base_s * 2.0 ** min(failures - 1, _MAX_EXPONENT))

    def retry_at_ms(self, failures: int, now_ms: int) -> int:
        """When the next attempt is due, in ms since the epoch."""
        return now_ms + round(self.delay_s(failures) * 1000)


# What a server gets when nothing overrides it: a second, doubling to five minutes.
PRODUCTION_BACKOFF = Backoff()
