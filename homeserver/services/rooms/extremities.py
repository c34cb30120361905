"""Capping a room's forward extremities: merging a crowd of heads with a dummy event.

Events from other servers can leave a room with many forward extremities (servers that sent
at once, a link cut for a while, events that arrive with gaps). Each one costs: every later
event names them, and the state at the room's end is their resolution. When a remote write
leaves a room with more than `MAX_EXTREMITIES` heads, one of this server's joined members
sends an `org.matrix.dummy_event` with empty content; like every local event it names up to
twenty heads as prev_events (`LocalEvents`), so it merges them.

This is what Synapse does (`dummy_events_threshold`, 10, and the event type; its
`_send_dummy_events_to_fill_extremities` runs every five minutes; here the merge follows the
write that crossed the bound). As there, the members are tried in turn until one may send
(a 403 moves to the next); a room where none may is left alone for an hour. At most one merge
per room runs at a time, sending events until the bound holds (a few at most), and the rooms
held back are bounded.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

from homeserver.errors import MatrixError
from homeserver.logs import outside_requests
from homeserver.services.clock import Clock
from homeserver.services.rooms.cache import RoomCache
from homeserver.services.rooms.local import LocalEvents
from storage import events as events_store

log = logging.getLogger(__name__)

DUMMY_EVENT = "org.matrix.dummy_event"
# More heads than this and they are merged (Synapse's default `dummy_events_threshold`).
MAX_EXTREMITIES = 10
_HOLD_BACK_MS = 3600 * 1000
_MAX_HELD_BACK = 10_000
_MAX_MERGES = 10  # dummy events one crowding may cost (200 heads merged)


class ExtremityMerger:
    def __init__(self, cache: RoomCache, local: LocalEvents, clock: Clock) -> None:
        self.cache = cache
        self.local = local
        self.clock = clock
        self._running: dict[str, asyncio.Task[None]] = {}
        self._held_back: OrderedDict[str, int] = OrderedDict()  # room -> until (ms)

    def crowded(self, room_id: str) -> None:
        """The room has more than MAX_EXTREMITIES heads: merge them (in the background)."""
        until = self._held_back.get(room_id)
        if until is not None:
            if until > self.clock.now_ms():
                return
            del self._held_back[room_id]
        if room_id in self._running:
            return
        task = asyncio.create_task(self._merge(room_id), context=outside_requests())
        self._running[room_id] = task
        task.add_done_callback(lambda _t: self._running.pop(room_id, None))

    async def _merge(self, room_id: str) -> None:
        """Merge until the bound holds (one event merges twenty heads; more may have come)."""
        for _ in range(_MAX_MERGES):
            heads = await self.local.db.run(
                lambda c: events_store.get_forward_extremities(c, room_id)
            )
            if len(heads) <= MAX_EXTREMITIES or not await self._send_dummy(room_id):
                return

    async def _send_dummy(self, room_id: str) -> bool:
        """Send one dummy event as the first local member allowed to; whether one was."""
        members = await self.local.db.run(lambda c: self.cache.joined_members(c, room_id))
        for user_id in sorted(m for m in members if self.cache.is_local(m)):
            try:
                await self.local.send(room_id, user_id, DUMMY_EVENT, {}, if_joined=True)
                return True
            except MatrixError as e:
                if e.status != 403:
                    log.warning("merging the heads of %s failed: %s", room_id, e.error)
                    return False
            except Exception:
                log.exception("merging the heads of %s failed", room_id)
                return False
        log.info("no member of %s here may send the event that merges its heads", room_id)
        self._held_back[room_id] = self.clock.now_ms() + _HOLD_BACK_MS
        while len(self._held_back) > _MAX_HELD_BACK:
            self._held_back.popitem(last=False)
        return False
