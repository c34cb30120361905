"""The retention sweeps' scheduler: one background task of the main process that, every
`retention.purge_interval_ms`, runs each registered sweep in turn.

Theory of operation. A sweep is a named `async def sweep(now_ms) -> SweepResult | None` that
forgets what is due at `now_ms` (rooms: events past their lifetime; redactions: content a
redaction removed; media: unused or unreferenced files; client_ips: old addresses). `app.py`
lists them; room retention is listed only when `retention.enabled`, the others always. A
sweep that raises is logged and counted as a failure and the others still run; the task
itself never ends but by cancellation (`stop`, before the pool closes). The first round runs
at start-up, so that what fell due while the server was down goes at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from homeserver import metrics
from homeserver.services.clock import Clock

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SweepResult:
    purged: int = 0  # events (media, devices' addresses) forgotten in this run
    purged_bytes: int = 0  # bytes of them, where the sweep knows (0 otherwise)


SweepFn = Callable[[int], Awaitable[SweepResult | None]]


@dataclass(frozen=True, slots=True)
class Sweep:
    name: str  # one of `metrics.RETENTION_SWEEPS`
    run: SweepFn


class RetentionSweeps:
    def __init__(self, sweeps: Sequence[Sweep], *, interval_ms: int, clock: Clock) -> None:
        for sweep in sweeps:
            if sweep.name not in metrics.RETENTION_SWEEPS:
                raise ValueError(f"unknown sweep {sweep.name!r}")
        self.sweeps = list(sweeps)
        self._interval_s = interval_ms / 1000
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._running = asyncio.Lock()  # a round called by hand waits for the scheduled one

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Cancel the task (a sweep in progress rolls its transaction back) and wait for it."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    async def run_once(self) -> dict[str, bool]:
        """Run every sweep once, in order; whether each succeeded, by name."""
        async with self._running:
            return {sweep.name: await self._run_sweep(sweep) for sweep in self.sweeps}

    async def _run(self) -> None:
        while True:
            await self.run_once()
            await asyncio.sleep(self._interval_s)

    async def _run_sweep(self, sweep: Sweep) -> bool:
        started = time.monotonic()
        try:
            result = await sweep.run(self._clock.now_ms())
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("retention sweep %s failed", sweep.name)
            metrics.RETENTION_SWEEP_FAILURES.labels(sweep.name).inc()
            return False
        elapsed = time.monotonic() - started
        metrics.RETENTION_SWEEP_SECONDS.labels(sweep.name).observe(elapsed)
        metrics.RETENTION_LAST_SUCCESS.labels(sweep.name).set(time.time())
        if result is not None and result.purged:
            metrics.RETENTION_PURGED_EVENTS.labels(sweep.name).inc(result.purged)
            metrics.RETENTION_PURGED_BYTES.labels(sweep.name).inc(result.purged_bytes)
            log.info(
                "retention sweep %s forgot %d (%d bytes) in %.3f s", sweep.name,
                result.purged, result.purged_bytes, elapsed,
            )
        return True
