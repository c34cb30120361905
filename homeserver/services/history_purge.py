"""History purge: deleting a room's events from before a point, to reclaim space (the admin
API's `purge_history`, and retention after it).

Theory of operation. A purge keeps the point's event, the room's oldest from then on, and
deletes the events before it (less deep in the DAG and earlier in the stream, as Synapse
purges by depth) that `storage.history_purge` says may go: never state, outliers, forward
extremities or the targets of receipts, so the room's state, its auth chains and its DAG stay
whole and it goes on working; events of local senders only when asked (`delete_local_events`:
they may be the only copies there are). Events sent after the point was chosen are later in
the stream than it, so a purge never touches what is sent while it runs.

Retention asks for more (`censor_kept`): what a room forgets must be gone, so after the
deletes the non-state events up to the point that had to stay (the point itself, receipt
targets, forward extremities, outliers) are stripped, batch by batch too: their rows are
rewritten to their redacted form (the event ID, hashes and signatures still hold the DAG
together) and their search entries and notifications deleted. The local media the deleted
and stripped events referred to become candidates of the media sweep, which deletes what
nothing else refers to.

It deletes in batches, oldest first, each in its own short transaction serialized with the
room's writers (so no writer waits long, and what is left is always the newer part of the
history, without holes); after each commit the caches of this process and of the workers
forget the deleted events, and unread counts that counted them are read again. Purges of one
room run one after the other. `start` runs one in the background and keeps its status for
`purge_history_status` in this process's memory, the last `KEPT_STATUSES` of them (Synapse
keeps them in memory too); a purge cut short by a restart is simply started again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from typing import Any

import asyncpg

from homeserver.errors import MatrixError, invalid_param, not_found
from homeserver.protocol.media_refs import local_media_ids
from homeserver.protocol.redaction import redacted_json
from homeserver.services.censoring import forget_in_appservice_transactions
from homeserver.services.clock import Clock
from homeserver.services.rooms.cache import RoomCache
from homeserver.services.rooms.writes import RoomWrites
from homeserver.services.unread_counts import UnreadCounts
from storage import events as events_store
from storage import history_purge as purge_store
from storage import media_release
from storage import rooms as rooms_store
from storage.database import Database
from storage.history_purge import PurgePoint

log = logging.getLogger(__name__)

BATCH_SIZE = 100
KEPT_STATUSES = 1000
_BEFORE_ALL = (-(2**63), "")  # a (depth, event ID) key below every event's


@dataclass(slots=True)
class PurgeStatus:
    status: str = "active"  # "active", "complete" or "failed" (Synapse's words)
    error: str | None = None
    deleted: int = 0
    stripped: int = 0  # kept, but their content removed (`censor_kept`)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        if self.error is not None:
            out["error"] = self.error
        return out


@dataclass(frozen=True, slots=True)
class _Batch:
    events: list[purge_store.Purgeable]  # deleted (or stripped), oldest first
    notified: set[str]  # the users whose notifications went with them
    after: tuple[int, str] = _BEFORE_ALL  # stripping: the key of the last event looked at


class HistoryPurges:
    def __init__(
        self, db: Database, writes: RoomWrites, cache: RoomCache, unread: UnreadCounts,
        *, server_name: str, clock: Clock, batch_size: int = BATCH_SIZE,
    ) -> None:
        self.db = db
        self.clock = clock
        self.writes = writes
        self.cache = cache
        self.unread = unread
        self._local_suffix = ":" + server_name
        self.batch_size = batch_size
        self._room_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._statuses: OrderedDict[str, PurgeStatus] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()

    # ---- where to purge up to ---------------------------------------------------------------

    async def point_at_event(self, room_id: str, event_id: str) -> PurgePoint:
        """The event as the point: 404 for an unknown room or event, 400 for an event of
        another room."""
        async def read(conn: asyncpg.Connection) -> PurgePoint:
            await self.cache.room_version(conn, room_id)  # 404 for an unknown room
            stored = (await events_store.get_events(conn, [event_id])).get(event_id)
            if stored is None:
                raise not_found(f"Unknown event {event_id}")
            if stored.room_id != room_id:
                raise invalid_param(f"Event {event_id} is not in room {room_id}")
            return PurgePoint(event_id, stored.depth, stored.stream_ordering)

        return await self.db.run(read)

    async def point_before_ts(self, room_id: str, ts: int) -> PurgePoint | None:
        """The newest of the room's events sent before `ts` (ms), all older ones before it
        too; None when there is none (nothing to purge). 404 for an unknown room."""
        async def read(conn: asyncpg.Connection) -> PurgePoint | None:
            await self.cache.room_version(conn, room_id)
            return await purge_store.get_point_before_ts(conn, room_id, ts)

        return await self.db.run(read)

    # ---- purging ----------------------------------------------------------------------------

    async def purge(
        self, room_id: str, point: PurgePoint, *, delete_local_events: bool,
        censor_kept: bool = False, status: PurgeStatus | None = None,
    ) -> PurgeStatus:
        """Delete what may go of the room's history before `point` (see the module
        docstring); `censor_kept`: then strip the content of the non-state events up to it
        that stay (retention). `status` counts them as they go; returned at the end."""
        status = status if status is not None else PurgeStatus()
        # Users whose notifications went: their unread counts are read again once, at the
        # end, rather than after every batch (each re-read counts the whole unread stretch,
        # and a purge of a busy room would otherwise slow every /sync of its members).
        notified: set[str] = set()
        async with self._room_locks[room_id]:
            try:
                after = _BEFORE_ALL
                while batch := await self._purge_batch(
                    room_id, point, after, delete_local_events
                ):
                    # Committed: no reader finds them in the database any more.
                    self._forget(room_id, batch, notified)
                    status.deleted += len(batch.events)
                    after = (batch.events[-1].depth, batch.events[-1].event_id)
                after = _BEFORE_ALL
                while censor_kept and (batch := await self._strip_batch(room_id, point, after)):
                    after = batch.after
                    self._forget(room_id, batch, notified)
                    status.stripped += len(batch.events)
            finally:
                self.unread.notifications_deleted(room_id, notified)
        log.info(
            "purged %d events of %s before %s (%d more stripped)",
            status.deleted, room_id, point.event_id, status.stripped,
        )
        return status

    def _forget(self, room_id: str, batch: _Batch, notified: set[str]) -> None:
        # A stripped event is one past its room's retention, which no reader serves: the
        # caches may forget it as if it were deleted.
        self.cache.purged(room_id, [e.event_id for e in batch.events])
        notified.update(batch.notified)

    async def _purge_batch(
        self, room_id: str, point: PurgePoint, after: tuple[int, str],
        delete_local_events: bool,
    ) -> _Batch | None:
        """Delete the next batch in one transaction; None when nothing is left to delete."""
        async def run(conn: asyncpg.Connection) -> _Batch | None:
            if not await rooms_store.lock_room(conn, room_id):
                raise not_found(f"Unknown room {room_id}")
            events = await purge_store.get_purgeable(
                conn, room_id, point, after=after, delete_local_events=delete_local_events,
                local_suffix=self._local_suffix, limit=self.batch_size,
            )
            if not events:
                return None
            deleted = await purge_store.delete_events(conn, room_id, events)
            await self._release_media(conn, deleted.json)
            await forget_in_appservice_transactions(conn, [e.event_id for e in events])
            return _Batch(events, deleted.notified)

        return await self.writes.exclusive(room_id, "purge_history", run)

    async def _strip_batch(
        self, room_id: str, point: PurgePoint, after: tuple[int, str]
    ) -> _Batch | None:
        """Strip the content of the next batch of kept events in one transaction (those
        already content-less are left as they are); None when none is left to look at."""
        async def run(conn: asyncpg.Connection) -> _Batch | None:
            if not await rooms_store.lock_room(conn, room_id):
                raise not_found(f"Unknown room {room_id}")
            kept = await purge_store.get_kept(
                conn, room_id, point, after=after, limit=self.batch_size
            )
            if not kept:
                return None
            version = await self.cache.room_version(conn, room_id)
            stripped = []
            for row in kept:
                pruned = redacted_json(json.loads(row.json), version)
                if pruned != row.json:
                    stripped.append((row.event, pruned))
            last = kept[-1].event
            notified = await purge_store.strip_events(conn, room_id, stripped)
            await forget_in_appservice_transactions(conn, [e.event_id for e, _ in stripped])
            await self._release_media(conn, [r.json for r in kept])
            return _Batch([e for e, _ in stripped], notified, after=(last.depth, last.event_id))

        return await self.writes.exclusive(room_id, "purge_history", run)

    async def _release_media(self, conn: asyncpg.Connection, rows: list[str]) -> None:
        """Record the local media the events (as they were stored) referred to, for the media
        sweep to delete once nothing else refers to it."""
        media: set[str] = set()
        for row in rows:
            content = json.loads(row).get("content")
            if isinstance(content, dict):
                media |= local_media_ids(content, self.cache.server_name)
        await media_release.add_media_candidates(conn, sorted(media), self.clock.now_ms())

    # ---- in the background ------------------------------------------------------------------

    def start(self, room_id: str, point: PurgePoint, *, delete_local_events: bool) -> str:
        """Run a purge in the background; its ID for `status`."""
        purge_id = secrets.token_urlsafe(12)
        status = self._statuses[purge_id] = PurgeStatus()
        while len(self._statuses) > KEPT_STATUSES:
            self._statuses.popitem(last=False)
        task = asyncio.get_running_loop().create_task(
            self._run(room_id, point, delete_local_events, status)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return purge_id

    async def _run(
        self, room_id: str, point: PurgePoint, delete_local_events: bool, status: PurgeStatus
    ) -> None:
        try:
            await self.purge(
                room_id, point, delete_local_events=delete_local_events, status=status
            )
            status.status = "complete"
        except MatrixError as e:
            status.status, status.error = "failed", e.error
        except Exception as e:
            log.exception("the purge of %s before %s failed", room_id, point.event_id)
            status.status, status.error = "failed", f"{type(e).__name__}: {e}"

    def status(self, purge_id: str) -> PurgeStatus | None:
        return self._statuses.get(purge_id)

    async def stop(self) -> None:
        """Cancel the purges in flight (before the pool closes); each batch done stays done."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
