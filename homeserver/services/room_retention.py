"""The room retention sweep: forgetting the events that have outlived their room's retention
policy (MSC1763 `m.room.retention`, or the server's default), disappearing posts included.

Theory of operation. Readers stop serving an event the moment it expires
(`RoomView.expired_before`, applied by the visibility filter and federation's reads); this
sweep then makes it gone. For each room whose events may expire it takes the room's lifetime
as of `now_ms`, finds the newest event all of whose predecessors were sent before
`now_ms - lifetime` and hands the room's history up to it to the history purge: every
sender's events are deleted (retention is the room's choice, not the sender's), and those the
room's DAG still needs (state aside) are kept content-less, the newest of them (the point
itself) as the room's anchor. The purge works in short batches under the room's write lock,
so sends to the room wait at most one batch; events sent while it runs are newer than the
point and untouched. `sweep` is what the retention scheduler calls every
`retention.purge_interval_ms`.
"""

from __future__ import annotations

import logging

from homeserver.services.clock import Clock
from homeserver.services.history_purge import HistoryPurges
from homeserver.services.retention_sweeps import SweepResult
from homeserver.services.rooms.retention import RetentionPolicy
from storage import room_retention as retention_store
from storage.database import Database

log = logging.getLogger(__name__)

class RoomRetention:
    def __init__(
        self, db: Database, policy: RetentionPolicy, purges: HistoryPurges, clock: Clock
    ) -> None:
        self.db = db
        self.policy = policy
        self.purges = purges
        self.clock = clock

    async def sweep(self, now_ms: int) -> SweepResult:
        """Purge every room's expired history as of `now_ms`: how many events went or lost
        their content. A room that fails is logged and the others are still swept; the run
        then raises, so that the scheduler counts it failed."""
        limits = self.policy.limits
        if limits is None:
            return SweepResult()
        room_ids = await self.db.run(lambda conn: retention_store.get_rooms_to_sweep(
            conn, every_room=limits.default_max_lifetime is not None
        ))
        purged = failed = 0
        for room_id in room_ids:
            try:
                purged += await self._sweep_room(room_id, now_ms)
            except Exception:
                failed += 1
                log.exception("the retention purge of %s failed", room_id)
        log.info("room retention swept %d rooms (%d failed)", len(room_ids), failed)
        if failed:
            raise RuntimeError(f"the retention purge of {failed} rooms failed")
        return SweepResult(purged=purged)

    async def _sweep_room(self, room_id: str, now_ms: int) -> int:
        lifetime = await self.db.run(lambda conn: self.policy.lifetime(conn, room_id))
        if lifetime is None:
            return 0
        point = await self.purges.point_before_ts(room_id, now_ms - lifetime)
        if point is None:
            return 0
        status = await self.purges.purge(
            room_id, point, delete_local_events=True, censor_kept=True
        )
        return status.deleted + status.stripped
