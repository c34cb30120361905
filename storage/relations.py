"""What relates to an event, summarised for bundling (client-server-api "Aggregations of child
events") and followed through several generations (`/relations?recurse=true`).

Children are found by their content's `m.relates_to.event_id` through the expression index
`events_relates_to` (migration 0017): a page of events costs one index probe per event, and an
event nothing relates to costs nothing more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from homeserver.protocol.relations import ENCRYPTED, REPLACE, THREAD, Edit
from storage.events import _EVENT_COLUMNS, RELATION_ORDERS, RELATION_PAGE, StoredEvent, _row


@dataclass(frozen=True, slots=True)
class ThreadRow:
    """The `m.thread` children of one root, less those of ignored users."""

    parent: str
    latest_event: str
    count: int
    participated: bool


@dataclass(frozen=True, slots=True)
class RelationSummary:
    edits: dict[str, Edit]  # parent → its latest edit by its own sender, of its own type
    threads: list[ThreadRow]
    references: dict[str, list[str]]  # parent → newest `m.reference` children, oldest first


# At most this many `m.reference` children are bundled per event, the newest: any member (or
# server) can reference any event, and each bundle of it must not grow with what others send.
# The spec sets no number; clients read the whole list from /relations.
MAX_REFERENCES = 100

# Children in the parent's room, neither rejected, soft-failed, outliers nor redacted, one row
# each that costs at most a row per parent: edits are those the validity rule could accept
# (the parent's sender and type, no state, `m.new_content` unless encrypted; the remaining
# checks are protocol/relations.py's), the latest of them taken here, so that edits sent by
# others cost no rows; references come newest MAX_REFERENCES; threads summed per root, since a
# thread may have thousands of replies.
GET_RELATION_SUMMARY = """
WITH children AS MATERIALIZED (
    SELECT rel ->> 'event_id' AS parent, rel ->> 'rel_type' AS rel_type, c.event_id,
           c.sender, c.type, c.state_key IS NOT NULL AS is_state, c.origin_server_ts,
           c.stream_ordering, content ? 'm.new_content' AS has_new_content
    FROM events c
    CROSS JOIN LATERAL (SELECT moot_event_content(c.json) AS content) j
    CROSS JOIN LATERAL (SELECT j.content -> 'm.relates_to' AS rel) r
    JOIN events p ON p.event_id = rel ->> 'event_id' AND p.room_id = c.room_id
    WHERE moot_event_content(c.json) -> 'm.relates_to' ->> 'event_id' = ANY($1::text[])
      AND rel ->> 'rel_type' IN ('m.replace', 'm.thread', 'm.reference')
      AND (rel ->> 'rel_type' <> 'm.replace'
           OR (c.sender = p.sender AND c.type = p.type AND c.state_key IS NULL
               AND (content ? 'm.new_content' OR c.type = $4)))
      AND c.stream_ordering IS NOT NULL AND c.rejection_reason IS NULL AND NOT c.soft_failed
      AND NOT EXISTS (SELECT 1 FROM event_redactions x JOIN events xe
                      ON xe.event_id = x.redaction_id
                      WHERE x.redacts = c.event_id AND xe.room_id = c.room_id)
)
(SELECT DISTINCT ON (parent) parent, rel_type, event_id, sender, type, is_state,
        origin_server_ts, has_new_content, stream_ordering, 1::bigint AS count,
        false AS participated
 FROM children WHERE rel_type = 'm.replace'
 ORDER BY parent, origin_server_ts DESC, event_id DESC)
UNION ALL
SELECT parent, rel_type, event_id, sender, type, is_state, origin_server_ts, has_new_content,
       stream_ordering, 1::bigint, false
FROM (SELECT *, row_number() OVER (PARTITION BY parent ORDER BY stream_ordering DESC) AS n
      FROM children WHERE rel_type = 'm.reference') newest
WHERE n <= $5
UNION ALL
SELECT parent, 'm.thread', (array_agg(event_id ORDER BY stream_ordering DESC))[1], NULL, NULL,
       NULL, NULL, NULL, max(stream_ordering), count(*), bool_or(sender = $2)
FROM children WHERE rel_type = 'm.thread' AND sender <> ALL($3::text[])
GROUP BY parent
ORDER BY stream_ordering
"""


async def get_relation_summary(
    conn: asyncpg.Connection, parent_ids: Sequence[str], user_id: str,
    ignored: Sequence[str],
) -> RelationSummary:
    """The latest edit, thread summary (replies of `ignored` senders left out; `participated`:
    whether `user_id` replied) and newest references of every event in `parent_ids`, in one
    query of at most MAX_REFERENCES + 2 rows per event."""
    summary = RelationSummary({}, [], {})
    if not parent_ids:
        return summary
    rows = await conn.fetch(
        GET_RELATION_SUMMARY, list(parent_ids), user_id, list(ignored), ENCRYPTED,
        MAX_REFERENCES,
    )
    for row in rows:
        rel_type, parent = row["rel_type"], row["parent"]
        if rel_type == THREAD:
            summary.threads.append(ThreadRow(
                parent, row["event_id"], row["count"], row["participated"]
            ))
        elif rel_type == REPLACE:
            summary.edits[parent] = Edit(
                row["event_id"], row["sender"], row["type"], row["is_state"],
                row["origin_server_ts"], row["has_new_content"],
            )
        else:
            summary.references.setdefault(parent, []).append(row["event_id"])
    return summary


# The descendants of an event to `$8` generations (children are generation 1), filtered and
# paged like GET_RELATIONS. UNION (not UNION ALL) keeps an event reached twice once.
_DESCENDANTS = f"""
WITH RECURSIVE descendants(event_id, generation) AS (
    SELECT c.event_id, 1 FROM events c
    WHERE moot_event_content(c.json) -> 'm.relates_to' ->> 'event_id' = $2 AND c.room_id = $1
    UNION
    SELECT c.event_id, d.generation + 1 FROM descendants d
    JOIN events c ON moot_event_content(c.json) -> 'm.relates_to' ->> 'event_id' = d.event_id
    WHERE d.generation < $8 AND c.room_id = $1
)
SELECT {_EVENT_COLUMNS} FROM events e
WHERE e.event_id IN (SELECT event_id FROM descendants)
{RELATION_PAGE}"""
GET_DESCENDANTS_BACKWARDS, GET_DESCENDANTS_FORWARDS = (_DESCENDANTS + o for o in RELATION_ORDERS)


async def get_descendants(
    conn: asyncpg.Connection, room_id: str, parent_id: str, *, rel_type: str | None,
    event_type: str | None, after: int, before: int, limit: int, newest_first: bool,
    generations: int,
) -> list[StoredEvent]:
    """Like `events.get_relations`, over the children of `parent_id`, their children and so
    on down `generations` levels."""
    query = GET_DESCENDANTS_BACKWARDS if newest_first else GET_DESCENDANTS_FORWARDS
    rows = await conn.fetch(
        query, room_id, parent_id, rel_type, event_type, after, before, limit, generations
    )
    return [_row(r) for r in rows]
