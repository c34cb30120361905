"""The `reports` table: what users reported to the server's administrators, one row each;
admins list and read them, and delete event reports (Synapse's admin API)."""

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
    """Which reports of a kind an admin lists: `reporter` and `room` match anywhere in the
    user and room ID, `sender` is the reported event's sender exactly; None matches all."""

    reporter: str | None = None
    room: str | None = None
    sender: str | None = None


# The reported room's name, canonical alias and topic as they are now (NULL when unset).
_ROOM_NAMING = """
    moot_event_content(name_event.json) ->> 'name' AS name,
    moot_event_content(alias_event.json) ->> 'alias' AS canonical_alias,
    moot_event_content(topic_event.json) ->> 'topic' AS topic
FROM reports r
LEFT JOIN current_state name_state
    ON name_state.room_id = r.room_id AND name_state.type = 'm.room.name'
   AND name_state.state_key = ''
LEFT JOIN events name_event ON name_event.event_id = name_state.event_id
LEFT JOIN current_state alias_state
    ON alias_state.room_id = r.room_id AND alias_state.type = 'm.room.canonical_alias'
   AND alias_state.state_key = ''
LEFT JOIN events alias_event ON alias_event.event_id = alias_state.event_id
LEFT JOIN current_state topic_state
    ON topic_state.room_id = r.room_id AND topic_state.type = 'm.room.topic'
   AND topic_state.state_key = ''
LEFT JOIN events topic_event ON topic_event.event_id = topic_state.event_id
"""
_REPORT_COLUMNS = (
    "SELECT r.id, r.received_ts, r.room_id, r.event_id, r.reporter, r.target_user, r.reason,"
)
# $1: the kind; $2..$4: the ReportQuery, as ILIKE patterns for the first two. A room report
# of a room this server no longer knows (purged) is left out, as Synapse leaves it out.
_REPORT_FILTER = """
WHERE r.kind = $1
  AND ($2::text IS NULL OR r.reporter ILIKE $2)
  AND ($3::text IS NULL OR r.room_id ILIKE $3)
  AND ($4::text IS NULL OR r.target_user = $4)
  AND (r.kind <> 'room' OR EXISTS (SELECT FROM rooms WHERE rooms.room_id = r.room_id))
"""
COUNT_REPORTS = "SELECT count(*) FROM reports r" + _REPORT_FILTER
GET_REPORTS = (
    _REPORT_COLUMNS + _ROOM_NAMING + _REPORT_FILTER
    + "ORDER BY CASE WHEN $7 THEN -r.id ELSE r.id END LIMIT $5 OFFSET $6"
)


def _arguments(kind: str, query: ReportQuery) -> tuple[str, str | None, str | None, str | None]:
    return (
        kind,
        None if query.reporter is None else like_pattern(query.reporter),
        None if query.room is None else like_pattern(query.room),
        query.sender,
    )


async def get_reports(
    conn: asyncpg.Connection, kind: str, query: ReportQuery, offset: int, limit: int, *,
    newest_first: bool,
) -> tuple[list[asyncpg.Record], int]:
    """One page of the reports of `kind` that `query` matches, in the order received (or the
    newest first), and how many it matches in all."""
    args = _arguments(kind, query)
    total: int = await conn.fetchval(COUNT_REPORTS, *args)
    rows = await conn.fetch(GET_REPORTS, *args, limit, offset, newest_first)
    return list(rows), total


GET_REPORT = (
    _REPORT_COLUMNS + " reported.json AS event_json," + _ROOM_NAMING
    + "LEFT JOIN events reported ON reported.event_id = r.event_id"
    " WHERE r.kind = $1 AND r.id = $2"
)


async def get_report(
    conn: asyncpg.Connection, kind: str, report_id: int
) -> asyncpg.Record | None:
    """One report of `kind` with the reported event's stored JSON (NULL if none is stored)."""
    return await conn.fetchrow(GET_REPORT, kind, report_id)


DELETE_REPORT = "DELETE FROM reports WHERE kind = $1 AND id = $2"


async def delete_report(conn: asyncpg.Connection, kind: str, report_id: int) -> bool:
    """False if there is no such report of `kind`."""
    status: str = await conn.execute(DELETE_REPORT, kind, report_id)
    return status.endswith(" 1")
