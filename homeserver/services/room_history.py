"""A room's history from before this server joined it, for /messages: the seam to the servers
that hold it, the tokens that point into it, and the pages read across it.

Theory of operation. A server that joins a room late holds its events from the join on, each
at a stream position (what /sync and /messages page by). When a reader of /messages going back
reaches the oldest of them, `RoomReads` asks the room's other servers for what comes before
(`RemoteHistory.backfill`, implemented by federation, server-server-api.md "Backfilling and
retrieving missing events") and reads on.

Backfilled events are *historical*: checked like every received event (signatures, auth against
their auth events and against the state before them, which for the oldest of a batch is fetched
from the server), stored with their state, so that history visibility is judged at each of
them as for any event, but with no stream position. So /sync, which pages by stream position,
never hands them out as news; they are no forward extremity and never touch the current state,
which stays what the join and the events since made it. They are not outliers either: an
outlier has no state and no place in the history, a historical event has both.

/messages reads a room as two segments, the stream on top and the history below it, ordered
by (depth, event ID) since events fetched together have no other common order. Its tokens are
stream tokens (`s…`, as /sync's) in the upper segment and history tokens (`h<depth>_<event
ID>`: the gap just below that event) in the lower; a page going back that empties the stream
segment goes on in the history from its top, one going forward from the history goes on into
the stream from its start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import asyncpg

from homeserver.errors import MatrixError
from homeserver.protocol.identifiers import is_valid_event_id
from homeserver.services.streams import MAX_POSITION, StreamToken
from storage import events as events_store
from storage.events import StoredEvent

# Backward extremities one backfill asks about: those at the very bottom are what a reader
# arriving there needs, and a few suffice to cover the forks of a room's oldest events.
BACKFILL_POINTS = 5
# Backfills one /messages page may wait for: a server may answer with fewer events than asked.
BACKFILL_ROUNDS = 3


class RemoteHistory(Protocol):
    async def backfill(self, room_id: str, from_event_ids: Sequence[str], limit: int) -> int:
        """Fetch up to `limit` events preceding `from_event_ids` (events this server lacks)
        from the room's other servers, and store those that pass the checks as historical
        events; how many were stored."""
        ...


class NoRemoteHistory:
    """Without federation there is no other server to ask: history ends where ours does."""

    async def backfill(self, room_id: str, from_event_ids: Sequence[str], limit: int) -> int:
        return 0


@dataclass(frozen=True, slots=True)
class HistoryToken:
    """The gap just below the historical event (depth, event_id): going back from it reads
    what is older than that event; going forward, that event and what is newer."""

    depth: int
    event_id: str

    @property
    def key(self) -> tuple[int, str]:
        return self.depth, self.event_id

    def encode(self) -> str:
        return f"h{self.depth}_{self.event_id}"

    @classmethod
    def below(cls, event: StoredEvent) -> HistoryToken:
        return cls(event.depth, event.event_id)

    @classmethod
    def parse(cls, token: str) -> HistoryToken:
        """Raises ValueError for anything that is not a history token this server issued."""
        depth, sep, event_id = token[1:].partition("_")
        if not token.startswith("h") or not sep or not is_valid_event_id(event_id):
            raise ValueError("not a history token")
        if not (depth.isascii() and depth.isdigit()) or int(depth) > MAX_POSITION:
            raise ValueError("depth out of range")
        return cls(int(depth), event_id)


Position = int | HistoryToken  # a stream position or a place in the history


def parse_position(token: str) -> Position:
    try:
        if token.startswith("h"):
            return HistoryToken.parse(token)
        return StreamToken.parse(token).events
    except ValueError:
        raise MatrixError(400, "M_INVALID_PARAM", f"Invalid pagination token {token!r}") from None


def encode_position(position: Position) -> str:
    if isinstance(position, HistoryToken):
        return position.encode()
    return StreamToken(events=position).encode()


def position_before(event: StoredEvent) -> Position:
    """The gap just below an event: where a page back from it starts."""
    if event.stream_ordering is not None:
        return event.stream_ordering - 1
    return HistoryToken.below(event)


async def position_after(conn: asyncpg.Connection, event: StoredEvent) -> Position:
    """The gap just above an event: where a page forward from it starts (for a historical
    event, the gap below the next one, or the bottom of the stream)."""
    if event.stream_ordering is not None:
        return event.stream_ordering
    newer = await events_store.get_historical_events(
        conn, event.room_id, key=(event.depth, event.event_id), limit=2, newest_first=False
    )
    following = [e for e in newer if e.event_id != event.event_id]
    return HistoryToken.below(following[0]) if following else 0


@dataclass(frozen=True, slots=True)
class Page:
    events: list[StoredEvent]
    start: str
    end: str | None  # None: nothing further that way (the `to` token, or the room's start)
    at_bottom: bool  # going back, it reached the oldest event held: backfill may give more

    def resume(self) -> str:
        """Where the next page back starts, for one that reached the oldest event held while
        other servers may hold more: below its last event (a stream token of 0 is the top of
        the history)."""
        if self.events and self.events[-1].stream_ordering is None:
            return HistoryToken.below(self.events[-1]).encode()
        return StreamToken().encode() if self.events else self.start


@dataclass(frozen=True, slots=True)
class PageQuery:
    room_id: str
    start: Position | None  # the `from` token
    stop: Position | None  # the `to` token
    ceiling: int  # the newest stream position the reader may see
    limit: int
    types: Sequence[str] | None = None
    senders: Sequence[str] | None = None


async def read_page(conn: asyncpg.Connection, q: PageQuery, *, backwards: bool) -> Page:
    """One /messages page across both segments."""
    if backwards:
        return await _backwards(conn, q)
    return await _forwards(conn, q)


async def _backwards(conn: asyncpg.Connection, q: PageQuery) -> Page:
    events: list[StoredEvent] = []
    if isinstance(q.start, HistoryToken):
        begin, key = q.start.encode(), q.start.key
        if isinstance(q.stop, int):  # a `to` in the stream lies above: nothing between
            return Page([], begin, None, False)
    else:
        upto = min(q.start if q.start is not None else q.ceiling, q.ceiling)
        after = q.stop if isinstance(q.stop, int) else 0
        events = await events_store.get_room_events(
            conn, q.room_id, after=after, upto=upto, limit=q.limit, newest_first=True,
            types=q.types, senders=q.senders,
        )
        begin, key = StreamToken(events=upto).encode(), None
        if len(events) == q.limit:
            end = StreamToken(events=(events[-1].stream_ordering or 0) - 1).encode()
            return Page(events, begin, end, False)
        if isinstance(q.stop, int):
            return Page(events, begin, None, False)
    older = await events_store.get_historical_events(
        conn, q.room_id, key=key, limit=q.limit - len(events), newest_first=True,
        types=q.types, senders=q.senders,
    )
    if isinstance(q.stop, HistoryToken):
        bound = q.stop.key
        return Page(events + [e for e in older if (e.depth, e.event_id) >= bound], begin,
                    None, False)
    events += older
    if len(events) == q.limit:
        return Page(events, begin, HistoryToken.below(events[-1]).encode(), False)
    return Page(events, begin, None, True)


async def _forwards(conn: asyncpg.Connection, q: PageQuery) -> Page:
    if isinstance(q.start, int):
        begin = StreamToken(events=q.start).encode()
        if isinstance(q.stop, HistoryToken):  # a `to` in the history lies behind: nothing
            return Page([], begin, None, False)
        return await _stream_forwards(conn, q, q.start, [], begin)
    # From the oldest event held (no `from`) or from a place in the history. One event more
    # than the page tells where the next page starts.
    newer = await events_store.get_historical_events(
        conn, q.room_id, key=q.start.key if q.start is not None else None, limit=q.limit + 1,
        newest_first=False, types=q.types, senders=q.senders,
    )
    if q.start is not None:
        begin = q.start.encode()
    else:
        begin = HistoryToken.below(newer[0]).encode() if newer else StreamToken().encode()
    if isinstance(q.stop, HistoryToken):
        bound = q.stop.key
        return Page([e for e in newer[:q.limit] if (e.depth, e.event_id) < bound], begin,
                    None, False)
    if len(newer) > q.limit:
        return Page(newer[:q.limit], begin, HistoryToken.below(newer[q.limit]).encode(), False)
    return await _stream_forwards(conn, q, 0, newer, begin)


async def _stream_forwards(
    conn: asyncpg.Connection, q: PageQuery, after: int, events: list[StoredEvent], begin: str
) -> Page:
    """`events` followed by the stream after `after`, up to the page's limit."""
    if len(events) == q.limit:
        return Page(events, begin, StreamToken(events=after).encode(), False)
    stop = q.stop if isinstance(q.stop, int) else q.ceiling
    newer = await events_store.get_room_events(
        conn, q.room_id, after=after, upto=min(stop, q.ceiling), limit=q.limit - len(events),
        newest_first=False, types=q.types, senders=q.senders,
    )
    events = events + newer
    end = None
    if len(events) == q.limit and newer:
        end = StreamToken(events=newer[-1].stream_ordering or 0).encode()
    return Page(events, begin, end, False)
