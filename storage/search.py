"""The `event_search` table: full-text vectors of room messages, names and topics.

What is indexed is decided here, next to the table: the one plain-text field of
`m.room.message` (body), `m.room.name` (name) and `m.room.topic` (topic). Encrypted events
(`m.room.encrypted`) carry no plaintext, so they never get a row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

# PostgreSQL's text search configuration: stems English words ("martians" finds "martian").
TS_CONFIG = "english"

# event type -> (the search key clients name, the content field holding the text)
SEARCHABLE: dict[str, tuple[str, str]] = {
    "m.room.message": ("content.body", "body"),
    "m.room.name": ("content.name", "name"),
    "m.room.topic": ("content.topic", "topic"),
}
SEARCH_KEYS = tuple(key for key, _ in SEARCHABLE.values())

INSERT_EVENT_TEXTS = f"""
INSERT INTO event_search (event_id, room_id, stream_ordering, key, vector)
SELECT e, r, s, k, to_tsvector('{TS_CONFIG}', t)
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[]) AS n(e, r, s, k, t)
ON CONFLICT (event_id) DO NOTHING
"""


def _searchable_text(pdu: dict[str, Any]) -> tuple[str, str] | None:
    """(search key, text) of an event that is indexed, else None."""
    searchable = SEARCHABLE.get(pdu["type"])
    if searchable is None:
        return None
    if pdu["type"] != "m.room.message" and pdu.get("state_key") != "":
        return None
    key, field = searchable
    text = pdu["content"].get(field)
    if not isinstance(text, str) or not text:
        return None
    # PostgreSQL text cannot hold U+0000; the event itself keeps it in its escaped JSON.
    return key, text.replace("\x00", " ")


async def index_events(
    conn: asyncpg.Connection, events: Sequence[tuple[str, str, int, dict[str, Any]]]
) -> None:
    """Index the searchable ones of (event_id, room_id, stream_ordering, pdu), in the
    transaction that stores them."""
    rows = []
    for event_id, room_id, position, pdu in events:
        found = _searchable_text(pdu)
        if found is not None:
            rows.append((event_id, room_id, position, *found))
    if rows:
        columns = [list(column) for column in zip(*rows, strict=True)]
        await conn.execute(INSERT_EVENT_TEXTS, *columns)


DELETE_EVENTS = "DELETE FROM event_search WHERE event_id = ANY($1)"


async def delete_events(conn: asyncpg.Connection, event_ids: Sequence[str]) -> None:
    """Forget the words of events (redacted ones: their text must not linger here)."""
    if event_ids:
        await conn.execute(DELETE_EVENTS, list(event_ids))


@dataclass(frozen=True, slots=True)
class SearchHit:
    event_id: str
    room_id: str
    stream_ordering: int
    rank: float
    total: int  # every match of the query, before paging


_SEARCH = f"""
SELECT s.event_id, s.room_id, s.stream_ordering, ts_rank_cd(s.vector, q) AS rank,
       count(*) OVER () AS total
FROM event_search s JOIN events e USING (event_id),
     websearch_to_tsquery('{TS_CONFIG}', $1) q
WHERE s.vector @@ q AND s.room_id = ANY($2) AND s.key = ANY($3)
  AND ($4::text[] IS NULL OR e.type = ANY($4))
  AND ($5::text[] IS NULL OR e.sender = ANY($5))
  AND NOT (e.sender = ANY($6))
  AND NOT EXISTS (
      SELECT 1 FROM event_redactions r JOIN events re ON re.event_id = r.redaction_id
      WHERE r.redacts = s.event_id AND re.room_id = s.room_id)
"""
SEARCH_BY_RANK = _SEARCH + "ORDER BY rank DESC, s.stream_ordering DESC LIMIT $7 OFFSET $8"
SEARCH_BY_RECENT = (
    _SEARCH + "AND s.stream_ordering < $8 ORDER BY s.stream_ordering DESC LIMIT $7"
)


@dataclass(frozen=True, slots=True)
class SearchQuery:
    term: str
    room_ids: Sequence[str]
    keys: Sequence[str]
    types: Sequence[str] | None
    senders: Sequence[str] | None
    not_senders: Sequence[str]
    limit: int


async def search_by_rank(
    conn: asyncpg.Connection, query: SearchQuery, offset: int
) -> list[SearchHit]:
    """Matches best first, skipping the first `offset`."""
    return _hits(await conn.fetch(SEARCH_BY_RANK, *_args(query), offset))


async def search_by_recent(
    conn: asyncpg.Connection, query: SearchQuery, before: int
) -> list[SearchHit]:
    """Matches newest first, at stream positions below `before`."""
    return _hits(await conn.fetch(SEARCH_BY_RECENT, *_args(query), before))


def _args(q: SearchQuery) -> tuple[Any, ...]:
    return (
        q.term.replace("\x00", " "), list(q.room_ids), list(q.keys),
        list(q.types) if q.types is not None else None,
        list(q.senders) if q.senders is not None else None, list(q.not_senders), q.limit,
    )


def _hits(rows: Sequence[asyncpg.Record]) -> list[SearchHit]:
    return [
        SearchHit(r["event_id"], r["room_id"], r["stream_ordering"], float(r["rank"]), r["total"])
        for r in rows
    ]


GET_QUERY_LEXEMES = f"""
SELECT coalesce(array_agg(DISTINCT lexeme), '{{}}') FROM unnest(
    tsvector_to_array(to_tsvector('{TS_CONFIG}', $1))) AS lexeme
"""


async def get_query_lexemes(conn: asyncpg.Connection, term: str) -> list[str]:
    """The stems the query looks for, which clients highlight along with the typed words."""
    result: list[str] = await conn.fetchval(GET_QUERY_LEXEMES, term.replace("\x00", " "))
    return result
