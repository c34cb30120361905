"""The `reports` table: what users reported to the server's administrators, one row each;
admins list, read and delete the event reports (Synapse's admin API)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from storage.directory import like_pattern


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



@dataclass(frozen=True, slots=True)
class ReportQuery:
    """Which event reports an admin lists: `reporter` and `room` match anywhere in the user
    and room ID, `sender` is the reported event's sender exactly; None matches all."""

    reporter: str | None = None
    room: str | None = None
    sender: str | None = None


# The reported room's name and canonical alias as they are now (NULL when unset).
_ROOM_NAMING = """
    moot_event_content(name_event.json) ->> 'name' AS name,
    moot_event_content(alias_event.json) ->> 'alias' AS canonical_alias
FROM reports r
LEFT JOIN current_state name_state
    ON name_state.room_id = r.room_id AND name_state.type = 'm.room.name'
   AND name_state.state_key = ''
LEFT JOIN events name_event ON name_event.event_id = name_state.event_id
LEFT JOIN current_state alias_state
    ON alias_state.room_id = r.room_id AND alias_state.type = 'm.room.canonical_alias'
   AND alias_state.state_key = ''
LEFT JOIN events alias_event ON alias_event.event_id = alias_state.event_id
"""
# $1..$3: the ReportQuery, as ILIKE patterns for the first two.
_EVENT_REPORT_FILTER = """
WHERE r.kind = 'event'
  AND ($1::text IS NULL OR r.reporter ILIKE $1)
  AND ($2::text IS NULL OR r.room_id ILIKE $2)
  AND ($3::text IS NULL OR r.target_user = $3)
"""
COUNT_EVENT_REPORTS = "SELECT count(*) FROM reports r" + _EVENT_REPORT_FILTER
GET_EVENT_REPORTS = (
    "SELECT r.id, r.received_ts, r.room_id, r.event_id, r.reporter, r.target_user, r.reason,"
    + _ROOM_NAMING + _EVENT_REPORT_FILTER
    + "ORDER BY CASE WHEN $6 THEN -r.id ELSE r.id END LIMIT $4 OFFSET $5"
)


def _patterns(query: ReportQuery) -> tuple[str | None, str | None, str | None]:
    return (
        None if query.reporter is None else like_pattern(query.reporter),
        None if query.room is None else like_pattern(query.room),
        query.sender,
    )


async def get_event_reports(
    conn: asyncpg.Connection, query: ReportQuery, offset: int, limit: int, *,
    newest_first: bool,
) -> tuple[list[asyncpg.Record], int]:
    """One page of the event reports `query` matches, in the order received (or the newest
    first), and how many it matches in all."""
    args = _patterns(query)
    total: int = await conn.fetchval(COUNT_EVENT_REPORTS, *args)
    rows = await conn.fetch(GET_EVENT_REPORTS, *args, limit, offset, newest_first)
    return list(rows), total


GET_EVENT_REPORT = (
    "SELECT r.id, r.received_ts, r.room_id, r.event_id, r.reporter, r.target_user, r.reason,"
    " reported.json AS event_json," + _ROOM_NAMING
    + "LEFT JOIN events reported ON reported.event_id = r.event_id"
    " WHERE r.kind = 'event' AND r.id = $1"
)


async def get_event_report(conn: asyncpg.Connection, report_id: int) -> asyncpg.Record | None:
    """One event report with the reported event's stored JSON (NULL if no longer stored)."""
    return await conn.fetchrow(GET_EVENT_REPORT, report_id)


DELETE_EVENT_REPORT = "DELETE FROM reports WHERE kind = 'event' AND id = $1"


async def delete_event_report(conn: asyncpg.Connection, report_id: int) -> bool:
    """False if there is no such event report."""
    status: str = await conn.execute(DELETE_EVENT_REPORT, report_id)
    return status.endswith(" 1")
