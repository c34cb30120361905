"""What the redaction sweep reads of `event_redactions`: the redactions that took effect, in
stream order, and the rows that still hold content one of them removed (the redacted event in
a database written before rows were censored, and the edits of a redacted message).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class Redacted:
    """A redaction that took effect on an event of its own room."""

    position: int  # the redaction event's stream_ordering
    redaction_id: str
    redacts: str
    room_id: str


GET_REDACTIONS_AFTER = """
SELECT re.stream_ordering, r.redaction_id, r.redacts, re.room_id
FROM event_redactions r JOIN events re ON re.event_id = r.redaction_id
WHERE re.stream_ordering > $1
ORDER BY re.stream_ordering LIMIT $2
"""


async def get_redactions_after(
    conn: asyncpg.Connection, position: int, limit: int
) -> list[Redacted]:
    """The first `limit` redactions whose event comes after stream position `position`."""
    rows = await conn.fetch(GET_REDACTIONS_AFTER, position, limit)
    return [Redacted(r["stream_ordering"], r["redaction_id"], r["redacts"], r["room_id"])
            for r in rows]


# The redacted events whose row still has content, and the edits (`m.replace` by the same
# sender, of the same type: those a client would render in the message's place) still holding
# theirs; through the relations index. A censored message has `{}` content and is not read
# again; a censored state event keeps a few keys, and the caller compares.
GET_UNCENSORED = """
WITH r AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) AS r(redaction_id, redacts, room_id)
)
SELECT r.redaction_id, e.event_id, e.room_id, e.json
FROM r JOIN events e ON e.event_id = r.redacts AND e.room_id = r.room_id
WHERE moot_event_content(e.json) <> '{}'::jsonb
UNION ALL
SELECT r.redaction_id, c.event_id, c.room_id, c.json
FROM r JOIN events p ON p.event_id = r.redacts AND p.room_id = r.room_id
JOIN events c ON moot_event_content(c.json) -> 'm.relates_to' ->> 'event_id' = r.redacts
WHERE c.room_id = p.room_id AND c.sender = p.sender AND c.type = p.type
  AND c.state_key IS NULL
  AND moot_event_content(c.json) -> 'm.relates_to' ->> 'rel_type' = 'm.replace'
"""


@dataclass(frozen=True, slots=True)
class Uncensored:
    redaction_id: str  # the redaction that removed this row's content
    event_id: str
    room_id: str
    json: str


async def get_uncensored(
    conn: asyncpg.Connection, redactions: Sequence[Redacted]
) -> list[Uncensored]:
    if not redactions:
        return []
    rows = await conn.fetch(
        GET_UNCENSORED, [r.redaction_id for r in redactions], [r.redacts for r in redactions],
        [r.room_id for r in redactions],
    )
    return [Uncensored(r["redaction_id"], r["event_id"], r["room_id"], r["json"]) for r in rows]
