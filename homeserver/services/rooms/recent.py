"""The newest events of each room, held in memory so that a woken /sync reads them without a query.

Theory of operation. Sixteen clients long-polling one busy room each want the same few new
events; reading them from PostgreSQL once per client per message was most of /sync's cost. The
room engine appends every event it persists here, right after the commit and in the room's
stream order (it writes each room under one lock), and a reader asks for a window
`(after, upto]` of a room. A room's *tail* holds all of its events after `complete_after`: a
window starting at or after that is answered here, and so is one whose newest `limit` events the
tail holds (a first sync's timeline after a restart); any other returns None and the caller
reads the database. Rooms without a tail had no event since `known_since` (this process saw every
event after that), so "which rooms moved" is answered for them too. Eviction (the oldest events
of a long tail; whole tails of the least recently written rooms once `max_events` are held or
their JSON passes `max_bytes`, to bound the memory) only moves those bounds forward.

Only accepted events are appended (never rejected or soft-failed ones), as the database query
the window replaces filters them out.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from homeserver import metrics
from storage.events import StoredEvent

# A /sync timeline shows at most 100 events and asks for one more to know it was cut short.
DEFAULT_PER_ROOM = 101
DEFAULT_MAX_EVENTS = 50_000


@dataclass(slots=True)
class _Tail:
    complete_after: int
    events: deque[StoredEvent]


class RecentEvents:
    def __init__(
        self, known_since: int, *, max_bytes: int, per_room: int = DEFAULT_PER_ROOM,
        max_events: int = DEFAULT_MAX_EVENTS,
    ) -> None:
        self.known_since = known_since
        self._per_room = per_room
        self._max_events = max_events
        self._max_bytes = max_bytes
        self._held = 0
        self.bytes = 0  # of the held events' JSON
        self._tails: OrderedDict[str, _Tail] = OrderedDict()
        self._hits = metrics.CACHE_REQUESTS.child("recent_events", "hit")
        self._misses = metrics.CACHE_REQUESTS.child("recent_events", "miss")
        self._entries_metric = metrics.CACHE_ENTRIES.child("recent_events")
        self._bytes_metric = metrics.CACHE_SIZE_BYTES.child("recent_events")

    def append(self, stored: StoredEvent, previous_position: int | None) -> None:
        """Record a committed event; `previous_position` is the stream position of the room's
        event before it (None for the room's first event)."""
        position = stored.stream_ordering
        assert position is not None
        tail = self._tails.get(stored.room_id)
        if tail is not None and tail.events and (
            tail.events[-1].stream_ordering != previous_position
        ):
            self._drop(stored.room_id)  # an event went by without being appended: start over
            tail = None
        if tail is None:
            tail = _Tail(previous_position or 0, deque())
            self._tails[stored.room_id] = tail
        self._tails.move_to_end(stored.room_id)
        tail.events.append(stored)
        self._held += 1
        self.bytes += len(stored.json)
        if len(tail.events) > self._per_room:
            self._pop_oldest(tail)
        while self._held > self._max_events or self.bytes > self._max_bytes:
            if len(self._tails) > 1:
                self._drop(next(iter(self._tails)))
            elif len(tail.events) > 1:
                self._pop_oldest(tail)  # one room alone is over the budget
            else:
                break
        self._report()

    def _pop_oldest(self, tail: _Tail) -> None:
        oldest = tail.events.popleft()
        tail.complete_after = oldest.stream_ordering or 0
        self._held -= 1
        self.bytes -= len(oldest.json)

    def _drop(self, room_id: str) -> None:
        """Forget a room's tail; rooms without one are answered only after its last event."""
        tail = self._tails.pop(room_id)
        self._held -= len(tail.events)
        self.bytes -= sum(len(e.json) for e in tail.events)
        if tail.events:
            self.known_since = max(self.known_since, tail.events[-1].stream_ordering or 0)

    def _report(self) -> None:
        self._entries_metric.value = self._held
        self._bytes_metric.value = self.bytes

    def forget(self, room_id: str, position: int) -> None:
        """The room may have events up to `position` that were never appended (a commit whose
        outcome is unknown): answer nothing for it at or before that position."""
        if room_id in self._tails:
            self._drop(room_id)
            self._report()
        self.known_since = max(self.known_since, position)

    def redact(self, room_id: str, event_id: str, redaction_id: str) -> None:
        """Show a held event as redacted, as a database read after the redaction would."""
        tail = self._tails.get(room_id)
        if tail is None:
            return
        for i, held in enumerate(tail.events):
            if held.event_id == event_id:
                if held.redacted_by is None:
                    tail.events[i] = dataclasses.replace(held, redacted_by=redaction_id)
                return

    def rewrite(self, room_id: str, event_id: str, json: str) -> None:
        """Hold a censored row's new JSON (the redaction sweep rewrote it in the database)."""
        tail = self._tails.get(room_id)
        if tail is None:
            return
        for i, held in enumerate(tail.events):
            if held.event_id == event_id:
                self.bytes += len(json) - len(held.json)
                tail.events[i] = dataclasses.replace(held, json=json)
                self._report()
                return

    def discard(self, room_id: str, event_ids: AbstractSet[str]) -> None:
        """Events deleted from the database (a history purge): a window read from it would
        not find them either, so the tail still holds every event after `complete_after`."""
        tail = self._tails.get(room_id)
        if tail is None:
            return
        gone = [held for held in tail.events if held.event_id in event_ids]
        if not gone:
            return
        tail.events = deque(held for held in tail.events if held.event_id not in event_ids)
        self._held -= len(gone)
        self.bytes -= sum(len(held.json) for held in gone)
        self._report()

    def window(
        self, room_id: str, *, after: int, upto: int, limit: int,
        types: Sequence[str] | None = None, senders: Sequence[str] | None = None,
    ) -> list[StoredEvent] | None:
        """The newest `limit` events of the room in (after, upto], newest first, filtered like
        `storage.events.get_room_events`; None when this cache cannot answer for the window."""
        out = self._window(room_id, after, upto, limit, types, senders)
        (self._misses if out is None else self._hits).value += 1
        return out

    def _window(
        self, room_id: str, after: int, upto: int, limit: int,
        types: Sequence[str] | None, senders: Sequence[str] | None,
    ) -> list[StoredEvent] | None:
        tail = self._tails.get(room_id)
        if tail is None:
            return [] if after >= self.known_since else None
        out: list[StoredEvent] = []
        for held in reversed(tail.events):
            position = held.stream_ordering or 0
            if position <= after or len(out) >= limit:
                break
            if position > upto:
                continue
            if (types is None or held.type in types) and (
                senders is None or held.sender in senders
            ):
                out.append(held)
        if after < tail.complete_after and len(out) < limit:
            # Older events of the window may be missing here; `limit` events found are the
            # newest `limit` of it all the same (every one missing is older than they are).
            return None
        return out

    def rooms_changed(self, room_ids: Iterable[str], after: int, upto: int) -> set[str] | None:
        """Which of the rooms have an event in (after, upto]; None when one cannot be told."""
        moved = set()
        for room_id in room_ids:
            held = self.window(room_id, after=after, upto=upto, limit=1)
            if held is None:
                return None
            if held:
                moved.add(room_id)
        return moved

    def member_events(
        self, room_ids: Iterable[str], after: int, upto: int
    ) -> list[StoredEvent] | None:
        """The m.room.member events of the rooms in (after, upto], oldest first; None when one
        of the rooms cannot be told."""
        out: list[StoredEvent] = []
        for room_id in room_ids:
            held = self.window(
                room_id, after=after, upto=upto, limit=self._per_room, types=("m.room.member",)
            )
            if held is None:
                return None
            out.extend(reversed(held))
        return out
