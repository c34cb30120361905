"""Wall-clock time in milliseconds, the unit Matrix timestamps use (`origin_server_ts`, `ts`)."""

from __future__ import annotations

import time


def now_ms() -> int:
    """Milliseconds since the Unix epoch: one definition, so every service stamps alike."""
    return int(time.time() * 1000)
