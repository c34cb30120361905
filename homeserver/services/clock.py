"""Time, passed in rather than read from globals, so tests can move it and every service agrees.

Two readings answer two questions: `now_ms` is wall-clock time in the milliseconds Matrix
timestamps use (`origin_server_ts`, `ts`, expiry stamps stored in the database); `monotonic` is
seconds that never jump back, for deadlines, intervals and cache ages inside one process.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """What a service may ask of time."""

    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that only moves forward."""
        ...


class SystemClock:
    """The real clock, built once in `app.py` and handed to every service that reads time."""

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def monotonic(self) -> float:
        return time.monotonic()


SYSTEM_CLOCK = SystemClock()
