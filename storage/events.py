"""The `events` table and its DAG edges: insert a PDU, read events, page through a room."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class StoredEvent:
    event_id: str
    room_id: str
    stream_ordering: int | None
    depth: int
    type: str
    state_key: str | None
    sender: str
    json: str
    state_group: int | None
    rejected: bool
    replaces_state: str | None
    redacted_by: str | None
    # The room's current state after the event, where state resolution of the room's heads on
    # its arrival (an event of another server, on a fork) moved the current state or left it
    # other than the event's own `state_group`; None: that group is it. The state a /sync
    # token's position stands for is this one.
    current_state_group: int | None = None
    # Not a column: set by a read path for one reader, who gets the event redacted because
    # its sender was erased and the reader was not joined when it was sent.
    erased_for_reader: bool = False


_EVENT_COLUMNS = """
    e.event_id, e.room_id, e.stream_ordering, e.depth, e.type, e.state_key, e.sender, e.json,
    e.state_group, e.rejection_reason IS NOT NULL AS rejected, e.replaces_state,
    (SELECT r.redaction_id FROM event_redactions r JOIN events re ON re.event_id = r.redaction_id
      WHERE r.redacts = e.event_id AND re.room_id = e.room_id
      ORDER BY r.redaction_id LIMIT 1) AS redacted_by, e.current_state_group
"""


def _row(row: asyncpg.Record) -> StoredEvent:
    return StoredEvent(*row)


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An `events` row to write; `stored` is what readers will get back."""

    stored: StoredEvent
    origin_server_ts: int
    prev_events: Sequence[str]
    auth_events: Sequence[str]
    rejection_reason: str | None = None
    soft_failed: bool = False
    outlier: bool = False


INSERT_EVENTS = """
INSERT INTO events (event_id, room_id, stream_ordering, depth, type, state_key, sender,
                    origin_server_ts, json, state_group, replaces_state, rejection_reason,
                    soft_failed, outlier)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[],
                     $6::text[], $7::text[], $8::bigint[], $9::text[], $10::bigint[],
                     $11::text[], $12::text[], $13::boolean[], $14::boolean[])
"""
INSERT_EDGES = """
INSERT INTO event_edges (event_id, prev_event_id) SELECT * FROM unnest($1::text[], $2::text[])
"""
INSERT_AUTH_EDGES = """
INSERT INTO event_auth_edges (event_id, auth_event_id)
SELECT * FROM unnest($1::text[], $2::text[])
"""


async def insert_events(conn: asyncpg.Connection, new: Sequence[NewEvent]) -> None:
    """Write events and their DAG edges: three statements, however many events."""
    columns: list[list[object]] = [[] for _ in range(14)]
    for n in new:
        e = n.stored
        row = (
            e.event_id, e.room_id, e.stream_ordering, e.depth, e.type, e.state_key, e.sender,
            n.origin_server_ts, e.json, e.state_group, e.replaces_state, n.rejection_reason,
            n.soft_failed, n.outlier,
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    await conn.execute(INSERT_EVENTS, *columns)
    for statement, attr in ((INSERT_EDGES, "prev_events"), (INSERT_AUTH_EDGES, "auth_events")):
        pairs = [(n.stored.event_id, target) for n in new for target in getattr(n, attr)]
        if pairs:
            await conn.execute(statement, [a for a, _ in pairs], [b for _, b in pairs])


INSERT_REDACTION = """
INSERT INTO event_redactions (redaction_id, redacts) VALUES ($1, $2) ON CONFLICT DO NOTHING
"""


async def insert_redaction(conn: asyncpg.Connection, redaction_id: str, redacts: str) -> None:
    await conn.execute(INSERT_REDACTION, redaction_id, redacts)


GET_REDACTED_IDS = """
SELECT DISTINCT r.redacts FROM event_redactions r JOIN events re ON re.event_id = r.redaction_id
WHERE r.redacts = ANY($1) AND re.room_id = $2
"""


async def get_redacted_ids(
    conn: asyncpg.Connection, room_id: str, event_ids: Sequence[str]
) -> set[str]:
    """Which of `event_ids` a redaction of `room_id` already took effect on (one that arrived
    before the event it redacts)."""
    return {r["redacts"] for r in await conn.fetch(GET_REDACTED_IDS, list(event_ids), room_id)}


GET_REDACTED_CURRENT_STATE = """
SELECT e.event_id, e.room_id, e.json
FROM event_redactions r
JOIN events re ON re.event_id = r.redaction_id
JOIN events e ON e.event_id = r.redacts AND e.room_id = re.room_id
JOIN current_state cs ON cs.room_id = e.room_id AND cs.type = e.type
                     AND cs.state_key = e.state_key AND cs.event_id = e.event_id
"""


async def get_redacted_current_state(conn: asyncpg.Connection) -> list[tuple[str, str, str]]:
    """(event_id, room_id, stored JSON) of every redacted event in some room's current state."""
    rows = await conn.fetch(GET_REDACTED_CURRENT_STATE)
    return [(r["event_id"], r["room_id"], r["json"]) for r in rows]


CENSOR_EVENTS = """
UPDATE events e SET json = c.json
FROM unnest($1::text[], $2::text[], $3::text[]) AS c(event_id, room_id, json)
WHERE e.event_id = c.event_id AND e.room_id = c.room_id
"""


async def censor_events(
    conn: asyncpg.Connection, censored: Sequence[tuple[str, str, str]]
) -> None:
    """Replace the stored JSON of redacted events, (event_id, room_id, redacted JSON), by
    their redacted form: every reader of the row, SQL or not, then serves only that."""
    if censored:
        await conn.execute(CENSOR_EVENTS, *(list(c) for c in zip(*censored, strict=True)))


GET_FORWARD_EXTREMITIES = """
SELECT f.event_id, e.depth, e.state_group, e.stream_ordering
FROM forward_extremities f JOIN events e USING (event_id)
WHERE f.room_id = $1
"""


@dataclass(frozen=True, slots=True)
class Extremity:
    event_id: str
    depth: int
    state_group: int | None
    stream_ordering: int | None


async def get_forward_extremities(conn: asyncpg.Connection, room_id: str) -> list[Extremity]:
    return [Extremity(*r) for r in await conn.fetch(GET_FORWARD_EXTREMITIES, room_id)]


# One statement, one round trip (every batch of local sends ends with it): the new event is
# never among those it replaces, so the delete and the insert do not meet.
REPLACE_EXTREMITIES = """
WITH replaced AS (
    DELETE FROM forward_extremities WHERE room_id = $1 AND event_id = ANY($2::text[])
)
INSERT INTO forward_extremities (room_id, event_id) VALUES ($1, $3)
"""


async def replace_forward_extremities(
    conn: asyncpg.Connection, room_id: str, removed: Sequence[str], added: str
) -> None:
    """The new event becomes an extremity; the events it points to stop being ones."""
    await conn.execute(REPLACE_EXTREMITIES, room_id, list(removed), added)


GET_EVENTS = f"SELECT {_EVENT_COLUMNS} FROM events e WHERE e.event_id = ANY($1)"


async def get_events(conn: asyncpg.Connection, event_ids: Iterable[str]) -> dict[str, StoredEvent]:
    rows = await conn.fetch(GET_EVENTS, list(set(event_ids)))
    return {r["event_id"]: _row(r) for r in rows}


GET_ROOM_EVENTS_BACKWARDS = f"""
SELECT {_EVENT_COLUMNS} FROM events e
WHERE e.room_id = $1 AND e.stream_ordering <= $2 AND e.stream_ordering > $3
  AND e.rejection_reason IS NULL AND NOT e.soft_failed
  AND ($5::text[] IS NULL OR e.type = ANY($5))
  AND ($6::text[] IS NULL OR e.sender = ANY($6))
ORDER BY e.stream_ordering DESC LIMIT $4
"""
GET_ROOM_EVENTS_FORWARDS = f"""
SELECT {_EVENT_COLUMNS} FROM events e
WHERE e.room_id = $1 AND e.stream_ordering > $2 AND e.stream_ordering <= $3
  AND e.rejection_reason IS NULL AND NOT e.soft_failed
  AND ($5::text[] IS NULL OR e.type = ANY($5))
  AND ($6::text[] IS NULL OR e.sender = ANY($6))
ORDER BY e.stream_ordering ASC LIMIT $4
"""


async def get_room_events(
    conn: asyncpg.Connection, room_id: str, *, after: int, upto: int, limit: int,
    newest_first: bool, types: Sequence[str] | None = None,
    senders: Sequence[str] | None = None,
) -> list[StoredEvent]:
    """Timeline events with after < stream_ordering <= upto, at most `limit` of them.

    newest_first picks the newest `limit` events (for /sync timelines and backward pagination);
    otherwise the oldest. The result is always in the order it was fetched.
    """
    types_arg = list(types) if types is not None else None
    senders_arg = list(senders) if senders is not None else None
    if newest_first:
        rows = await conn.fetch(
            GET_ROOM_EVENTS_BACKWARDS, room_id, upto, after, limit, types_arg, senders_arg
        )
    else:
        rows = await conn.fetch(
            GET_ROOM_EVENTS_FORWARDS, room_id, after, upto, limit, types_arg, senders_arg
        )
    return [_row(r) for r in rows]


GET_ROOMS_NEWEST_EVENTS = f"""
SELECT w.* FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::int[])
    AS r(room_id, after, upto, max_events)
CROSS JOIN LATERAL (
    SELECT {_EVENT_COLUMNS} FROM events e
    WHERE e.room_id = r.room_id AND e.stream_ordering <= r.upto AND e.stream_ordering > r.after
      AND e.rejection_reason IS NULL AND NOT e.soft_failed
    ORDER BY e.stream_ordering DESC LIMIT r.max_events
) w
"""


async def get_rooms_newest_events(
    conn: asyncpg.Connection, windows: Sequence[tuple[str, int, int, int]]
) -> dict[str, list[StoredEvent]]:
    """For each window (room, after, upto, limit): what `get_room_events` with `newest_first`
    returns for it, in one query for all rooms (rooms with no event in theirs are left out)."""
    columns = [list(c) for c in zip(*windows, strict=True)] if windows else [[], [], [], []]
    out: dict[str, list[StoredEvent]] = {}
    for r in await conn.fetch(GET_ROOMS_NEWEST_EVENTS, *columns):
        out.setdefault(r["room_id"], []).append(_row(r))
    for events in out.values():
        events.sort(key=lambda e: e.stream_ordering or 0, reverse=True)
    return out


# Events from before this server joined the room, fetched by backfill: kept with their state,
# but with no stream position (they are no news to /sync), and neither outliers, rejected nor
# soft-failed. They page by (depth, event ID), all of them older than the room's stream.
_HISTORICAL = """
e.room_id = $1 AND e.stream_ordering IS NULL AND NOT e.outlier AND NOT e.soft_failed
  AND e.rejection_reason IS NULL
  AND ($5::text[] IS NULL OR e.type = ANY($5))
  AND ($6::text[] IS NULL OR e.sender = ANY($6))
"""
GET_HISTORY_BACKWARDS = f"""
SELECT {_EVENT_COLUMNS} FROM events e
WHERE {_HISTORICAL} AND ($2::bigint IS NULL OR (e.depth, e.event_id) < ($2, $3::text))
ORDER BY e.depth DESC, e.event_id DESC LIMIT $4
"""
GET_HISTORY_FORWARDS = f"""
SELECT {_EVENT_COLUMNS} FROM events e
WHERE {_HISTORICAL} AND ($2::bigint IS NULL OR (e.depth, e.event_id) >= ($2, $3::text))
ORDER BY e.depth ASC, e.event_id ASC LIMIT $4
"""


async def get_historical_events(
    conn: asyncpg.Connection, room_id: str, *, key: tuple[int, str] | None, limit: int,
    newest_first: bool, types: Sequence[str] | None = None,
    senders: Sequence[str] | None = None,
) -> list[StoredEvent]:
    """Historical events below `key` (newest_first) or from `key` up, at most `limit`; a
    `key` of None starts at the newest (or the oldest)."""
    depth, event_id = key if key is not None else (None, None)
    rows = await conn.fetch(
        GET_HISTORY_BACKWARDS if newest_first else GET_HISTORY_FORWARDS, room_id, depth,
        event_id, limit, list(types) if types is not None else None,
        list(senders) if senders is not None else None,
    )
    return [_row(r) for r in rows]


GET_SOFT_FAILED_IDS = "SELECT event_id FROM events WHERE event_id = ANY($1) AND soft_failed"


async def get_soft_failed_ids(conn: asyncpg.Connection, event_ids: Sequence[str]) -> set[str]:
    """The soft-failed events among `event_ids` (clients never see those)."""
    return {r["event_id"] for r in await conn.fetch(GET_SOFT_FAILED_IDS, list(event_ids))}


GET_ROOMS_WITH_NEW_EVENTS = """
SELECT DISTINCT room_id FROM events
WHERE room_id = ANY($1) AND stream_ordering > $2 AND stream_ordering <= $3
"""


async def get_rooms_changed(
    conn: asyncpg.Connection, room_ids: Sequence[str], after: int, upto: int
) -> set[str]:
    rows = await conn.fetch(GET_ROOMS_WITH_NEW_EVENTS, list(room_ids), after, upto)
    return {r["room_id"] for r in rows}


_STATE_CHANGES = f"""
SELECT DISTINCT ON (e.type, e.state_key) {_EVENT_COLUMNS} FROM events e
WHERE e.room_id = $1 AND e.stream_ordering > $2 AND e.stream_ordering <= $3
  AND e.state_key IS NOT NULL AND e.rejection_reason IS NULL AND NOT e.soft_failed
ORDER BY e.type, e.state_key, e.stream_ordering DESC
"""
# The changes and, in the same read, whether any event of the range has a resolved current
# state (`current_state_group`): /sync needs both for a gappy or filtered window, and the
# partial index `events_resolved_positions` makes the second free where no fork was resolved.
# One row with NULL columns when nothing changed.
GET_STATE_CHANGES = f"""
SELECT c.*, r.resolved FROM (
    SELECT EXISTS (SELECT 1 FROM events WHERE room_id = $1 AND stream_ordering > $2
                   AND stream_ordering <= $3 AND current_state_group IS NOT NULL) AS resolved
) r LEFT JOIN ({_STATE_CHANGES}) c ON true
"""


@dataclass(frozen=True, slots=True)
class StateChanges:
    events: list[StoredEvent]  # the latest state event per (type, state_key) that changed
    # Whether state resolution on the arrival of an event of the range moved the room's
    # current state or left it other than the state at that event.
    resolved: bool


async def get_state_changes(
    conn: asyncpg.Connection, room_id: str, after: int, upto: int
) -> StateChanges:
    """The state changes in (after, upto], and whether resolution moved the state there."""
    rows = await conn.fetch(GET_STATE_CHANGES, room_id, after, upto)
    changed = [StoredEvent(*list(r)[:-1]) for r in rows if r["event_id"] is not None]
    return StateChanges(changed, bool(rows[0]["resolved"]))


SET_CURRENT_STATE_GROUP = "UPDATE events SET current_state_group = $2 WHERE event_id = $1"


async def set_current_state_group(
    conn: asyncpg.Connection, event_id: str, state_group: int
) -> None:
    """Record the room's current state after a stored event, as resolution made it."""
    await conn.execute(SET_CURRENT_STATE_GROUP, event_id, state_group)


GET_MEMBERSHIP_CHANGES = """
SELECT DISTINCT ON (room_id) room_id, event_id, stream_ordering FROM events
WHERE type = 'm.room.member' AND state_key = $1 AND stream_ordering > $2
  AND stream_ordering <= $3 AND rejection_reason IS NULL AND NOT soft_failed
ORDER BY room_id, stream_ordering DESC
"""


async def get_membership_changes(
    conn: asyncpg.Connection, user_id: str, after: int, upto: int
) -> dict[str, tuple[str, int]]:
    """room_id -> (latest membership event, its position) for the user in (after, upto]."""
    rows = await conn.fetch(GET_MEMBERSHIP_CHANGES, user_id, after, upto)
    return {r["room_id"]: (r["event_id"], r["stream_ordering"]) for r in rows}


# A membership event's predecessors, newest first, through `replaces_state` (the member event
# it replaced in the state); the first of them that replaced a join is where the user last
# stopped being joined. The walk is bounded: a chain of invites and kicks with no join in it
# must not make each read walk the whole room history of that user.
MEMBERSHIP_CHAIN_HOPS = 200
GET_LAST_DEPARTURE = f"""
WITH RECURSIVE chain(event_id, replaces_state, hop) AS (
    SELECT event_id, replaces_state, 0 FROM events WHERE event_id = $1
    UNION ALL
    SELECT e.event_id, e.replaces_state, c.hop + 1
    FROM chain c JOIN events e ON e.event_id = c.replaces_state
    WHERE c.hop < $2
)
SELECT {_EVENT_COLUMNS} FROM chain c
JOIN events p ON p.event_id = c.replaces_state
JOIN events e ON e.event_id = c.event_id
WHERE p.json::jsonb -> 'content' ->> 'membership' = 'join'
ORDER BY c.hop LIMIT 1
"""


async def get_last_departure(
    conn: asyncpg.Connection, member_event_id: str
) -> StoredEvent | None:
    """The membership event, at or before `member_event_id` in the chain of the same user's
    membership, that ended their last join; None if they were never joined (within
    MEMBERSHIP_CHAIN_HOPS events of the chain)."""
    row = await conn.fetchrow(GET_LAST_DEPARTURE, member_event_id, MEMBERSHIP_CHAIN_HOPS)
    return None if row is None else _row(row)


# Event relationships: the children of an event by their content's `m.relates_to.event_id`
# (index `events_relates_to`, migration 0016). A page of them, here and of descendants
# (storage/relations.py), is the events `e` after the query's parent condition and
# RELATION_PAGE: $3 rel_type, $4 event type (each NULL for any), $5 < stream position < $6,
# at most $7, in one of RELATION_ORDERS (newest first, oldest first).
RELATION_PAGE = """
  AND e.stream_ordering > $5 AND e.stream_ordering < $6
  AND e.rejection_reason IS NULL AND NOT e.soft_failed
  AND ($3::text IS NULL OR moot_event_content(e.json) -> 'm.relates_to' ->> 'rel_type' = $3)
  AND ($4::text IS NULL OR e.type = $4)
"""
RELATION_ORDERS = ("ORDER BY e.stream_ordering DESC LIMIT $7",
                   "ORDER BY e.stream_ordering ASC LIMIT $7")
_RELATIONS = f"""
SELECT {_EVENT_COLUMNS} FROM events e
WHERE moot_event_content(e.json) -> 'm.relates_to' ->> 'event_id' = $2 AND e.room_id = $1
{RELATION_PAGE}"""
GET_RELATIONS_BACKWARDS, GET_RELATIONS_FORWARDS = (_RELATIONS + o for o in RELATION_ORDERS)


async def get_relations(
    conn: asyncpg.Connection, room_id: str, parent_id: str, *, rel_type: str | None,
    event_type: str | None, after: int, before: int, limit: int, newest_first: bool,
) -> list[StoredEvent]:
    """Children of `parent_id` with after < stream_ordering < before, at most `limit`."""
    query = GET_RELATIONS_BACKWARDS if newest_first else GET_RELATIONS_FORWARDS
    rows = await conn.fetch(
        query, room_id, parent_id, rel_type, event_type, after, before, limit
    )
    return [_row(r) for r in rows]


GET_THREADS = """
SELECT root, latest FROM (
    SELECT moot_event_content(e.json) -> 'm.relates_to' ->> 'event_id' AS root,
           max(e.stream_ordering) AS latest, bool_or(e.sender = $4) AS replied
    FROM events e
    WHERE e.room_id = $1
      AND moot_event_content(e.json) -> 'm.relates_to' ->> 'rel_type' = 'm.thread'
      AND e.stream_ordering IS NOT NULL AND e.rejection_reason IS NULL AND NOT e.soft_failed
    GROUP BY root
    HAVING max(e.stream_ordering) < $2
) t
WHERE $4::text IS NULL OR t.replied
   OR EXISTS (SELECT 1 FROM events r WHERE r.event_id = t.root AND r.sender = $4)
ORDER BY latest DESC LIMIT $3
"""


async def get_threads(
    conn: asyncpg.Connection, room_id: str, *, before: int, limit: int,
    participant: str | None = None,
) -> list[asyncpg.Record]:
    """The room's threads whose latest reply is before `before`, newest activity first: root
    event ID and the position of the latest reply (their summaries are bundled aggregations,
    storage/relations.py). With `participant`, only the threads that user replied in or whose
    root they sent (spec `include=participated`), chosen here so that a page is never cut
    down to nothing after it was read."""
    return list(await conn.fetch(GET_THREADS, room_id, before, limit, participant))


# The candidates nearest a timestamp, in either direction (index `events_room_time`): every
# event of the room a client may page to, those with a stream position and the historical ones
# fetched by backfill alike (history from before this server joined is still the room's), so
# neither outliers, rejected nor soft-failed; ties by (depth, event ID), as history pages.
_NEAR_TS = """
SELECT event_id FROM events
WHERE room_id = $1 AND origin_server_ts {} $2
  AND NOT outlier AND rejection_reason IS NULL AND NOT soft_failed
ORDER BY origin_server_ts {dir}, depth {dir}, event_id {dir} LIMIT $3
"""
GET_EVENTS_AFTER_TS = _NEAR_TS.format(">=", dir="ASC")
GET_EVENTS_BEFORE_TS = _NEAR_TS.format("<=", dir="DESC")


async def get_events_near_ts(
    conn: asyncpg.Connection, room_id: str, ts: int, *, forwards: bool, limit: int
) -> list[str]:
    """IDs of the room's events at or after (forwards) or at or before `ts`, nearest first."""
    query = GET_EVENTS_AFTER_TS if forwards else GET_EVENTS_BEFORE_TS
    return [r["event_id"] for r in await conn.fetch(query, room_id, ts, limit)]


# The current state of many rooms at once (sliding sync's rooms): entries by key, whole types,
# whole rooms. Only the parts with something to read are in a query (an empty one would still
# cost a scan under a generic plan); their parameters are numbered as they are put together.
_STATE_OF_KEYS = """
SELECT cs.event_id
FROM unnest(${}::text[], ${}::text[], ${}::text[]) AS k(room_id, type, state_key)
JOIN current_state cs USING (room_id, type, state_key)
"""
_STATE_OF_TYPES = """
SELECT cs.event_id FROM unnest(${}::text[], ${}::text[]) AS k(room_id, type)
JOIN current_state cs USING (room_id, type)
"""
_STATE_OF_ROOMS = "SELECT event_id FROM current_state WHERE room_id = ANY(${}::text[])"


async def get_current_state_of_rooms(
    conn: asyncpg.Connection, keys: Sequence[tuple[str, str, str]],
    whole_types: Sequence[tuple[str, str]], whole_rooms: Sequence[str],
) -> list[StoredEvent]:
    """The current state events named by `keys` (room, type, state_key), every key of
    `whole_types` (room, type), and all of `whole_rooms`, in one query."""
    parts: list[str] = []
    args: list[list[str]] = []
    for template, columns in (
        (_STATE_OF_KEYS, [list(c) for c in zip(*keys, strict=True)] if keys else []),
        (_STATE_OF_TYPES, [list(c) for c in zip(*whole_types, strict=True)]
         if whole_types else []),
        (_STATE_OF_ROOMS, [list(whole_rooms)] if whole_rooms else []),
    ):
        if columns:
            numbers = range(len(args) + 1, len(args) + len(columns) + 1)
            parts.append(template.format(*numbers))
            args.extend(columns)
    if not parts:
        return []
    query = (f"SELECT {_EVENT_COLUMNS} FROM events e WHERE e.event_id IN ("
             + " UNION ".join(parts) + ")")
    return [_row(r) for r in await conn.fetch(query, *args)]


GET_EVENTS_SENT_BY = """
SELECT stream_ordering, room_id, json FROM events
WHERE sender = $1 AND stream_ordering > $2 AND rejection_reason IS NULL
ORDER BY stream_ordering LIMIT $3
"""


async def get_events_sent_by(
    conn: asyncpg.Connection, sender: str, after: int, limit: int
) -> list[tuple[int, str, str]]:
    """Up to `limit` timeline events `sender` sent, after stream position `after`, oldest
    first, as (stream_ordering, room_id, stored JSON); rejected events and outliers are left
    out."""
    rows = await conn.fetch(GET_EVENTS_SENT_BY, sender, after, limit)
    return [(r["stream_ordering"], r["room_id"], r["json"]) for r in rows]
