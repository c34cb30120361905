"""How late the event loop runs what is due: every request, sync and federation transaction of a
process shares its loop, so a callback that computes or blocks for long delays them all.

A task asks to be woken every half second and records how much later than asked it was woken
(`moot_event_loop_lag_seconds`). It costs one timer per half second per process; what it
reports is what any request arriving at that moment would have waited before being looked at.
"""

from __future__ import annotations

import asyncio

from homeserver import metrics

INTERVAL_S = 0.5


async def measure_loop_lag(interval_s: float = INTERVAL_S) -> None:
    """Run until cancelled, observing the lateness of each wake-up."""
    loop = asyncio.get_running_loop()
    lag = metrics.EVENT_LOOP_LAG_SECONDS
    while True:
        due = loop.time() + interval_s
        await asyncio.sleep(interval_s)
        lag.observe(max(0.0, loop.time() - due))
