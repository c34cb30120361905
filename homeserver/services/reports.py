"""Reporting content (spec "Reporting content"): events, rooms and users reported to the
server's administrators, stored in `reports` for them (and logged, one line each).

What the spec asks of each kind:
- An event may be reported only by a user joined to its room now (v1.8, MUST); for anyone
  else, or an event they can't see, the answer is 404 as for one that does not exist.
- A room may be reported whether or not the reporter is joined (v1.13, MUST NOT restrict);
  the answer is 200 whether or not this server knows the room, as v1.18 allows, so the
  endpoint does not reveal which room IDs exist.
- A user may be reported whoever they share rooms with (v1.14); the answer is 200 whether or
  not the user exists, for the same reason.

Every report costs a token of the reporter's `rate_limits.reports` bucket first, so a user
cannot fill the table (or the administrators' queue).
"""

from __future__ import annotations

import logging

import asyncpg

from homeserver.errors import not_found
from homeserver.services.clock import Clock
from homeserver.services.ratelimit import RateLimiter
from homeserver.services.requester import Requester
from homeserver.services.room_reads import RoomReads
from storage import reports as store
from storage import state as state_store
from storage.database import Database
from storage.reports import Report

log = logging.getLogger("homeserver.reports")


class ReportsService:
    def __init__(
        self, db: Database, reads: RoomReads, ratelimiter: RateLimiter, clock: Clock
    ) -> None:
        self._db = db
        self._reads = reads
        self._ratelimiter = ratelimiter
        self._clock = clock

    async def report_event(
        self, requester: Requester, room_id: str, event_id: str, reason: str
    ) -> None:
        self._ratelimiter.check_user("reports", requester)
        event = await self._reads.event(requester, room_id, event_id)  # 404 if not theirs
        row = await self._db.run(
            lambda conn: state_store.get_membership(conn, room_id, requester.user_id)
        )
        if row is None or row["membership"] != "join":
            raise not_found("Event not found")
        await self._store(Report(
            requester.user_id, "event", reason, room_id=room_id, event_id=event_id,
            target_user=event.get("sender"),
        ))

    async def report_room(self, requester: Requester, room_id: str, reason: str) -> None:
        self._ratelimiter.check_user("reports", requester)
        await self._store(Report(requester.user_id, "room", reason, room_id=room_id))

    async def report_user(self, requester: Requester, user_id: str, reason: str) -> None:
        self._ratelimiter.check_user("reports", requester)
        await self._store(Report(requester.user_id, "user", reason, target_user=user_id))

    async def _store(self, report: Report) -> None:
        now = self._clock.now_ms()

        async def txn(conn: asyncpg.Connection) -> int:
            return await store.insert_report(conn, report, now)

        report_id = await self._db.transaction(txn, name="insert_report")
        # repr() keeps what the reporter chose on one log line.
        log.warning(
            "report %d by %s of %s room=%r event=%r user=%r: %r", report_id, report.reporter,
            report.kind, report.room_id, report.event_id, report.target_user, report.reason,
        )
