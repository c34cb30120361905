"""The client IP sweep: devices' last address and user agent are kept for
`privacy.client_ip_retention_ms`, then deleted (`/devices` and whois then leave them out).

The devices table is the only place Moot keeps client addresses (access logs go to the log
stream, never to the database). With a retention of 0 nothing is stored in the first place
(`AccountsService`), and this sweep clears what an earlier configuration kept. A device in
use has its last use recorded at least once a minute (the access-token cache keeps an entry
60 s at most; a miss writes `last_seen_ts`), so only an idle device's address ever expires.
"""

from __future__ import annotations

from homeserver.services.retention_sweeps import SweepResult
from storage import accounts as store
from storage.database import Database

# Devices cleared per transaction.
BATCH = 1000


class ClientIpSweep:
    def __init__(self, db: Database, retention_ms: int) -> None:
        self._db = db
        self._retention_ms = retention_ms

    async def sweep(self, now_ms: int) -> SweepResult:
        seen_before = now_ms - self._retention_ms
        cleared = 0
        while True:
            count = await self._db.transaction(
                lambda conn: store.forget_client_addresses(conn, seen_before, BATCH),
                name="client_ip_sweep",
            )
            cleared += count
            if count < BATCH:
                return SweepResult(cleared)
