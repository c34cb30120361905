"""The `reports` table: what users reported to the server's administrators, one row each."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class Report:
    """One report as received: `kind` is 'event', 'room' or 'user'."""

    reporter: str
    kind: str
    reason: str
    room_id: str | None = None
    event_id: str | None = None
    target_user: str | None = None


INSERT_REPORT = """
INSERT INTO reports (received_ts, reporter, kind, room_id, event_id, target_user, reason)
VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id
"""


async def insert_report(conn: asyncpg.Connection, report: Report, received_ts: int) -> int:
    """Store a report; returns its number."""
    report_id: int = await conn.fetchval(
        INSERT_REPORT, received_ts, report.reporter, report.kind, report.room_id,
        report.event_id, report.target_user, report.reason,
    )
    return report_id

