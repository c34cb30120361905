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
cannot fill the table (or the administrators' queue). Server admins list, read and delete the
event reports through Synapse's admin API (api/admin/reports.py).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import asyncpg

from homeserver.errors import not_found
from homeserver.services.clock import Clock
from homeserver.services.ratelimit import RateLimiter
from homeserver.services.requester import Requester
from homeserver.services.room_reads import RoomReads
from storage import reports as store
from storage import state as state_store
from storage.database import Database
from storage.reports import Report, ReportQuery

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

    # ---- what the server's admins read (the caller checked the admin) --------------------

    async def event_reports(
        self, query: ReportQuery, offset: int, limit: int, *, newest_first: bool
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of event reports as Synapse's admin API lists them, and the total."""
        rows, total = await self._db.run(lambda conn: store.get_reports(
            conn, "event", query, offset, limit, newest_first=newest_first
        ))
        return [_event_report_json(row) for row in rows], total

    async def event_report(self, report_id: int) -> dict[str, Any]:
        """One event report with the reported event (`event_json`, null if not stored)."""
        row = await self._report("event", report_id)
        report = _event_report_json(row)
        report["event_json"] = None if row["event_json"] is None else json.loads(row["event_json"])
        return report

    async def delete_event_report(self, report_id: int) -> None:
        deleted = await self._db.transaction(
            lambda conn: store.delete_report(conn, "event", report_id), name="delete_report"
        )
        if not deleted:
            raise not_found("Report not found")

    async def room_reports(
        self, query: ReportQuery, offset: int, limit: int, *, newest_first: bool
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of room reports, and the total."""
        rows, total = await self._db.run(lambda conn: store.get_reports(
            conn, "room", query, offset, limit, newest_first=newest_first
        ))
        return [_room_report_json(row) for row in rows], total

    async def room_report(self, report_id: int) -> dict[str, Any]:
        return _room_report_json(await self._report("room", report_id))

    async def _report(self, kind: str, report_id: int) -> asyncpg.Record:
        row = await self._db.run(lambda conn: store.get_report(conn, kind, report_id))
        if row is None:
            raise not_found("Report not found")
        return row


def _event_report_json(row: asyncpg.Record) -> dict[str, Any]:
    """Synapse's fields; `score` is null, since the spec dropped it and Moot never kept it."""
    return {
        "id": row["id"], "received_ts": row["received_ts"], "room_id": row["room_id"],
        "name": row["name"], "event_id": row["event_id"], "user_id": row["reporter"],
        "reason": row["reason"], "score": None, "sender": row["target_user"],
        "canonical_alias": row["canonical_alias"],
    }


def _room_report_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"], "received_ts": row["received_ts"], "room_id": row["room_id"],
        "user_id": row["reporter"], "reason": row["reason"], "name": row["name"],
        "canonical_alias": row["canonical_alias"], "topic": row["topic"],
    }
