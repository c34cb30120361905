"""Rooms' current state entries and member counts, held in memory for the readers that show
many rooms at once (a sliding sync list's name, avatar, encryption and lazy members).

Theory of operation. A room's entry holds the state entries asked of it so far, each key with
its current event or None (no such state), the types read whole, and its joined and invited
counts; a miss is read from the database, for all the rooms of a request in one query. The
room engine drops a room's entry after every commit that may have changed its current state
(`RoomCache.learn`: a state event or a redaction; a resolution of events from federation; any
write that failed, whose commit may yet have happened), before it wakes any reader. A read
fills the entry it took before its query: when a change drops that entry meanwhile, the fill
goes to a detached entry and is not kept, so what is held is never older than the last
change. Only the process that persists events hears of every change: elsewhere (a /sync
worker) the cache is made with `max_bytes=0`, keeps nothing and every read goes to the
database.

The cache is bounded by the size of what it holds (the events' JSON and a rough cost per entry
and room): the rooms least recently read go first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import asyncpg

from homeserver import metrics
from storage import events as events_store
from storage import sliding_sync as sliding_sync_store
from storage.events import StoredEvent

StateKey = tuple[str, str]
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
# What an entry costs besides its event's JSON (the key, the StoredEvent, the dict slot), and
# what a room costs with none: a rough count, enough to bound the memory.
ENTRY_BYTES = 200


@dataclass(frozen=True, slots=True)
class StateQuery:
    """What a reader wants of one room: these keys, and every key of these types."""

    keys: frozenset[StateKey] = frozenset()
    whole_types: frozenset[str] = frozenset()


@dataclass(slots=True)
class _Room:
    entries: dict[StateKey, StoredEvent | None] = field(default_factory=dict)
    whole_types: set[str] = field(default_factory=set)
    counts: tuple[int, int] | None = None  # joined, invited
    size: int = ENTRY_BYTES  # bytes, roughly

    def put(self, key: StateKey, event: StoredEvent | None) -> None:
        if key in self.entries:
            self.size -= _cost(self.entries[key])
        self.entries[key] = event
        self.size += _cost(event)


def _cost(event: StoredEvent | None) -> int:
    return ENTRY_BYTES + (len(event.json) if event is not None else 0)


class CurrentStateCache:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._max_bytes = max_bytes
        self._rooms: OrderedDict[str, _Room] = OrderedDict()
        self._held = 0  # bytes
        self._bytes_metric = metrics.CACHE_SIZE_BYTES.child("current_state")
        self._entries_metric = metrics.CACHE_ENTRIES.child("current_state")
        self._hits = metrics.CACHE_REQUESTS.child("current_state", "hit")
        self._misses = metrics.CACHE_REQUESTS.child("current_state", "miss")

    def invalidate(self, room_id: str) -> None:
        """The room's current state may have changed (called after the commit)."""
        room = self._rooms.pop(room_id, None)
        if room is not None:
            self._held -= room.size
            self._report()

    def clear(self) -> None:
        self._rooms.clear()
        self._held = 0
        self._report()

    def _report(self) -> None:
        self._bytes_metric.value = self._held
        self._entries_metric.value = len(self._rooms)

    async def get(
        self, conn: asyncpg.Connection, queries: Mapping[str, StateQuery]
    ) -> dict[str, list[StoredEvent]]:
        """room -> its current state events that `queries` names (missing keys left out)."""
        rooms = {room_id: self._take(room_id) for room_id in queries}
        keys: list[tuple[str, str, str]] = []
        types: list[tuple[str, str]] = []
        for room_id, query in queries.items():
            room = rooms[room_id]
            types.extend((room_id, t) for t in query.whole_types if t not in room.whole_types)
            keys.extend(
                (room_id, t, k) for t, k in query.keys
                if (t, k) not in room.entries and t not in room.whole_types
                and t not in query.whole_types
            )
        self._count(len(queries), {r for r, *_ in keys} | {r for r, _ in types})
        if keys or types:
            found = await events_store.get_current_state_of_rooms(conn, keys, types, [])
            before = {room_id: room.size for room_id, room in rooms.items()}
            for room_id, event_type, state_key in keys:
                rooms[room_id].put((event_type, state_key), None)
            for room_id, event_type in types:
                rooms[room_id].whole_types.add(event_type)
            for event in found:
                rooms[event.room_id].put((event.type, event.state_key or ""), event)
            self._grown({r: room.size - before[r] for r, room in rooms.items()}, rooms)
        out: dict[str, list[StoredEvent]] = {}
        for room_id, query in queries.items():
            entries = rooms[room_id].entries
            held = [entries.get(key) for key in query.keys]
            if query.whole_types:
                held.extend(e for key, e in entries.items()
                            if key[0] in query.whole_types and key not in query.keys)
            out[room_id] = [e for e in held if e is not None]
        return out

    async def member_counts(
        self, conn: asyncpg.Connection, room_ids: Sequence[str]
    ) -> dict[str, tuple[int, int]]:
        """room -> (joined, invited) members now."""
        rooms = {room_id: self._take(room_id) for room_id in room_ids}
        missing = [r for r, room in rooms.items() if room.counts is None]
        self._count(len(rooms), missing)
        if missing:
            counts = await sliding_sync_store.get_member_counts(conn, missing)
            for room_id in missing:
                rooms[room_id].counts = counts.get(room_id, (0, 0))
        return {room_id: room.counts or (0, 0) for room_id, room in rooms.items()}

    def _count(self, asked: int, missed: Collection[str]) -> None:
        """Of `asked` rooms, those `missed` were read from the database (one miss each)."""
        self._misses.value += len(missed)
        self._hits.value += asked - len(missed)

    def _take(self, room_id: str) -> _Room:
        """The room's entry, made (and, in a caching process, kept) if it had none."""
        room = self._rooms.get(room_id)
        if room is not None:
            self._rooms.move_to_end(room_id)
            return room
        room = _Room()
        if self._max_bytes > 0:
            self._rooms[room_id] = room
            self._held += room.size
            self._evict()
        return room

    def _grown(self, growth: Mapping[str, int], rooms: Mapping[str, _Room]) -> None:
        """Count what fills added to the entries still held (not to detached ones)."""
        for room_id, added in growth.items():
            if self._rooms.get(room_id) is rooms[room_id]:
                self._held += added
        self._evict()

    def _evict(self) -> None:
        while self._held > self._max_bytes and len(self._rooms) > 1:
            _, oldest = self._rooms.popitem(last=False)
            self._held -= oldest.size
        self._report()
