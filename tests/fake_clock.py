"""A `homeserver.services.clock.Clock` that tests move by hand, so time-dependent behaviour is
checked without sleeping."""

from __future__ import annotations

START_MS = 1_700_000_000_000


class FakeClock:
    def __init__(self, ms: int = START_MS, seconds: float = 1000.0) -> None:
        self.ms = ms  # what `now_ms` answers
        self.seconds = seconds  # what `monotonic` answers

    def now_ms(self) -> int:
        return self.ms

    def monotonic(self) -> float:
        return self.seconds

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass on both readings."""
        self.seconds += seconds
        self.ms += round(seconds * 1000)
