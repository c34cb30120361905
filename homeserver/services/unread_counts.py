"""Unread notification counts per user and room, for every /sync that shows the room.

Theory of operation. Counting a user's notifications after their read receipt in the database
reads every notification since then, and a room whose members do not read accumulates many.
The process that persists events knows every notification as it commits, so it keeps each
(user, room) count in memory (`notified`): loaded once from the database, then incremented, and
dropped when the user's read receipt moves (`read_moved`). A count that may include an event
past the sync's token is read from the database instead, so a response never counts an event
it does not show yet. A process that does not persist events (a worker) cannot keep counts
current and always reads the database (`live=False`), except the push worker, whose counts
follow the main process's changes to those of the users holding a pusher (`on_notified`,
`on_dropped`; see `push_wakeups.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import asyncpg

from homeserver.services.fill_cache import FillCache
from storage import push as push_store
from storage.push import NotificationGroup, UnreadCount

_CACHE_SIZE = 200_000
_NO_BOUND = 2**62  # the loads that fill the cache count every committed notification


class UnreadCounts:
    def __init__(self, *, live: bool = True) -> None:
        self.live = live
        self._counts: FillCache[tuple[str, str], UnreadCount] = FillCache(
            "unread_counts", _CACHE_SIZE
        )
        # Told of every change, for a copy of some counts in another process to follow.
        self.on_notified: list[Callable[[list[NotificationGroup]], None]] = []
        self.on_dropped: list[Callable[[str, str], None]] = []  # (user, room)

    def notified(self, groups: Iterable[NotificationGroup]) -> None:
        """After the commit of the events that gave these notifications."""
        groups = list(groups)
        for group in groups:
            self.count(group.room_id, group.stream_ordering, group.highlight, group.user_ids)
        for listener in self.on_notified:
            listener(groups)

    def count(
        self, room_id: str, stream_ordering: int, highlight: bool, user_ids: Iterable[str]
    ) -> None:
        """One committed notification of these users."""
        for user_id in user_ids:
            key = (user_id, room_id)
            count = self._counts.peek(key)
            if count is None:
                self._counts.invalidate(key)  # a load in flight may have missed it
                continue
            if stream_ordering <= count.last:
                continue  # a load that ran after the commit already counted it
            count.notifications += 1
            count.highlights += highlight
            count.last = max(count.last, stream_ordering)

    def read_moved(self, user_id: str, room_id: str) -> None:
        self._counts.invalidate((user_id, room_id))
        for listener in self.on_dropped:
            listener(user_id, room_id)

    def notifications_deleted(self, room_id: str, user_ids: Iterable[str]) -> None:
        """After the commit that deleted notifications of these users in the room (a history
        purge): their counts are read again."""
        for user_id in user_ids:
            self.read_moved(user_id, room_id)

    def clear(self) -> None:
        """Forget every count (changes may have been missed)."""
        self._counts.clear()

    async def get(
        self, conn: asyncpg.Connection, user_id: str, room_ids: Sequence[str], upto: int
    ) -> dict[str, tuple[int, int]]:
        """room -> (notifications, highlights) after the read receipt, up to `upto`."""
        out: dict[str, tuple[int, int]] = {}
        missing = []
        for room_id in room_ids:
            count = self._counts.lookup((user_id, room_id)) if self.live else None
            if count is None and self.live:
                missing.append(room_id)
            elif count is not None and count.last <= upto:
                out[room_id] = (count.notifications, count.highlights)
        if missing:
            filled = await self._counts.load_many(
                [(user_id, r) for r in missing],
                lambda keys: self._load(conn, user_id, [room for _, room in keys]),
            )
            for (_, room_id), count in filled.items():
                if count.last <= upto:
                    out[room_id] = (count.notifications, count.highlights)
        rest = [r for r in room_ids if r not in out]
        if rest:  # not live, or a count that includes an event past `upto`
            exact = await push_store.get_unread_counts(conn, user_id, rest, upto)
            for room_id in rest:
                found = exact.get(room_id)
                out[room_id] = (found.notifications, found.highlights) if found else (0, 0)
        return out

    async def by_thread(
        self, conn: asyncpg.Connection, user_id: str, room_ids: Sequence[str], upto: int
    ) -> dict[str, dict[str, tuple[int, int]]]:
        """room -> thread root (or `main`) -> (notifications, highlights), for a client that
        asked for counts per thread (Element's sync filter does). The cache holds room
        totals: only the rooms with something unread are read from the database, split by
        thread; the rest, most rooms most of the time, cost no query. A worker has no cache
        and reads them all at once."""
        out: dict[str, dict[str, tuple[int, int]]] = {}
        if self.live:
            totals = await self.get(conn, user_id, room_ids, upto)
            room_ids = [room_id for room_id, total in totals.items() if total != (0, 0)]
            if not room_ids:
                return out
        found = await push_store.get_thread_unread_counts(conn, user_id, room_ids, upto)
        for (room_id, thread_id), count in found.items():
            out.setdefault(room_id, {})[thread_id] = (count.notifications, count.highlights)
        return out

    @staticmethod
    async def _load(
        conn: asyncpg.Connection, user_id: str, room_ids: list[str]
    ) -> dict[tuple[str, str], UnreadCount]:
        found = await push_store.get_unread_counts(conn, user_id, room_ids, _NO_BOUND)
        return {(user_id, r): found.get(r) or UnreadCount(0, 0, 0) for r in room_ids}
