"""Presence (Client-Server API "Presence"): online, unavailable or offline, and since when.

Theory of operation. A user's presence is one row: the state they (or their syncing clients)
last set, a status message, the time of their last activity and the presence-stream position of
the last change others should hear about. /sync sends `m.presence` events for the rows of users
sharing a joined room with the syncer whose position lies between two tokens.

Activity is cheap: a /sync marks its user online (unless `set_presence` says otherwise) but
writes only when the state changes or the stored activity time is older than a granularity;
moving the activity time alone takes no stream position and wakes nobody. Going idle is both
computed lazily (a row whose activity is older than `presence.idle_timeout_ms` reads as
offline everywhere) and made durable by a periodic sweep that sets such rows offline with a new
position, so the users sharing a room with them are woken and told.

Writes are serialized by one lock, so positions commit in order and the position a woken
/sync reads up to always includes the change that woke it.

Other servers' users' presence arrives through `set_remote` (from `m.presence` EDUs) and is
stored like a local user's, idle timeout included; a local user's changes go, through `edus`,
to the other servers sharing a room with them, and so does an active user's unchanged
presence every half idle timeout, which keeps it from timing out there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import asyncpg

from homeserver.config import PresenceConfig
from homeserver.errors import forbidden
from homeserver.services.clock import Clock
from homeserver.services.notifier import Notifier
from homeserver.services.outbound_edus import Edus
from storage import presence as presence_store
from storage.database import Database
from storage.presence import PresenceRow
from storage.streams import Slot, StreamIdGenerator

log = logging.getLogger(__name__)

ONLINE, UNAVAILABLE, OFFLINE = "online", "unavailable", "offline"
PRESENCE_STATES = (ONLINE, UNAVAILABLE, OFFLINE)
# A user active within this window (and online) is `currently_active`.
CURRENTLY_ACTIVE_MS = 60_000
MAX_SWEEP_INTERVAL_S = 30.0
SWEEP_BATCH = 500
# What an `m.presence` EDU says of a user (their profile is not part of it).
EDU_FIELDS = ("presence", "status_msg", "last_active_ago", "currently_active")


class PresenceService:
    def __init__(
        self, db: Database, stream: StreamIdGenerator, notifier: Notifier,
        config: PresenceConfig, edus: Edus, clock: Clock,
    ) -> None:
        self.db = db
        self.stream = stream
        self.notifier = notifier
        self.clock = clock
        self.idle_ms = config.idle_timeout_ms
        self.active_ms = min(CURRENTLY_ACTIVE_MS, self.idle_ms)
        # Activity is written at most this often per user while nothing else changes.
        self.granularity_ms = self.active_ms // 2
        # user -> (state, activity time) as last written by this process.
        self._written: dict[str, tuple[str, int]] = {}
        self._lock = asyncio.Lock()
        # Set in a process that does not write the presence stream (a worker): /sync activity
        # is handed to it, for the process that does, instead of being written here.
        self.forward: Callable[[str, str], None] | None = None
        # Where local users' changes go to other servers, and when each was last sent there.
        self.edus = edus
        self._announced: dict[str, int] = {}
        # Told the user after every change of their presence (appservices hear of it).
        self.on_change: list[Callable[[str], None]] = []

    # ---- writes ---------------------------------------------------------------------------

    async def set_presence(self, user_id: str, state: str, status_msg: str | None) -> None:
        """An explicit PUT: always a change others hear about."""
        await self._write(user_id, state, status_msg, keep_status=False)

    async def sync_activity(self, user_id: str, set_presence: str | None) -> None:
        """A /sync's `set_presence` (default online); `offline` leaves presence untouched."""
        state = set_presence or ONLINE
        if state == OFFLINE:
            return
        written = self._written.get(user_id)
        if written is not None and written[0] == state and (
            self.clock.now_ms() - written[1] < self.granularity_ms
        ):
            return
        if self.forward is not None:
            self.forward(user_id, state)
            self._written[user_id] = (state, self.clock.now_ms())
            return
        await self._write(user_id, state, None, keep_status=True)

    async def set_remote(
        self, user_id: str, state: str, status_msg: str | None, last_active_ago: int
    ) -> None:
        """Another server's user's presence, as their server tells it. Repeating the stored
        state and status only moves the activity time, as a local user's /sync does."""
        await self._write(
            user_id, state, status_msg, keep_status=False,
            active_ts=self.clock.now_ms() - last_active_ago, only_changes=True,
        )

    async def _write(
        self, user_id: str, state: str, status_msg: str | None, *, keep_status: bool,
        active_ts: int | None = None, only_changes: bool = False,
    ) -> None:
        """`keep_status`: keep the stored status message, and only move the activity time
        while the state stays; `only_changes`: that too, unless the status message differs."""
        now = self.clock.now_ms() if active_ts is None else active_ts

        async def run(conn: asyncpg.Connection, slot: Slot) -> bool:
            row = await presence_store.get_presence(conn, user_id)
            same = row is not None and self.effective_state(row, self.clock.now_ms()) == state and (
                keep_status or (only_changes and row.status_msg == status_msg)
            )
            if same:
                await presence_store.touch_presence(conn, user_id, now)
                return False
            status = row.status_msg if keep_status and row is not None else status_msg
            await presence_store.upsert_presence(conn, user_id, state, status, now, slot.position)
            return True

        async with self._lock:
            with self.stream.allocate() as slot:
                changed = await self.db.transaction(lambda conn: run(conn, slot), name="presence")
            self._written[user_id] = (state, now)
        if changed:
            await self._notify(user_id)
        elif self._announce_due(user_id):
            roommates = await self.db.run(lambda c: presence_store.get_roommates(c, user_id))
            await self._announce(user_id, roommates)

    async def sweep_idle(self) -> int:
        """Set users idle past the timeout offline; returns how many changed."""
        bound = self.clock.now_ms() - self.idle_ms
        users = await self.db.run(
            lambda conn: presence_store.get_idle_users(conn, bound, SWEEP_BATCH)
        )
        changed = 0
        for user_id in users:
            async with self._lock:
                with self.stream.allocate() as slot:
                    done = await self.db.transaction(
                        partial(_set_offline, user_id=user_id, idle_before=bound, slot=slot),
                        name="presence_idle",
                    )
                self._written.pop(user_id, None)
            if done:
                changed += 1
                await self._notify(user_id)
        return changed

    async def run_idle_sweeper(self) -> None:
        """Background task: sweep a few times per idle timeout (at least every 30 s)."""
        interval = min(self.idle_ms / 2000, MAX_SWEEP_INTERVAL_S)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep_idle()
            except Exception:
                log.exception("presence idle sweep failed")

    async def _notify(self, user_id: str) -> None:
        """Wake the user and their roommates; tell the roommates' servers of a local user."""
        roommates = await self.db.run(lambda conn: presence_store.get_roommates(conn, user_id))
        self.notifier.notify_users(roommates | {user_id})
        for hook in self.on_change:
            hook(user_id)
        if self.edus.sends_for(user_id):
            await self._announce(user_id, roommates)

    def _announce_due(self, user_id: str) -> bool:
        """Whether a local user whose presence stays the same should be announced again:
        other servers only hear of changes, so without this their idle timeout would take
        an active user offline there."""
        last = self._announced.get(user_id)
        return self.edus.sends_for(user_id) and (
            last is None or self.clock.now_ms() - last >= self.idle_ms // 2
        )

    async def _announce(self, user_id: str, roommates: set[str]) -> None:
        """Send a local user's presence to the other servers of their roommates."""
        edus = self.edus
        if not edus.reaches_any(roommates):
            return
        row = await self.db.run(lambda conn: presence_store.get_presence(conn, user_id))
        if row is not None:
            self._announced[user_id] = self.clock.now_ms()
            content = self.content(row, self.clock.now_ms())
            update: dict[str, Any] = {"user_id": user_id}
            update.update((k, content[k]) for k in EDU_FIELDS if k in content)
            await edus.to_servers_of(roommates, "m.presence", {"push": [update]})

    # ---- reads ----------------------------------------------------------------------------

    def effective_state(self, row: PresenceRow, now: int) -> str:
        """The stored state, or offline once the user has been idle past the timeout."""
        if row.state != OFFLINE and now - row.last_active_ts > self.idle_ms:
            return OFFLINE
        return row.state

    def content(self, row: PresenceRow, now: int) -> dict[str, Any]:
        """`m.presence` content (also the GET /presence/{userId}/status body)."""
        state = self.effective_state(row, now)
        ago = max(0, now - row.last_active_ts)
        content: dict[str, Any] = {
            "presence": state,
            "last_active_ago": ago,
            "currently_active": state == ONLINE and ago <= self.active_ms,
        }
        if row.status_msg is not None:
            content["status_msg"] = row.status_msg
        if row.displayname is not None:
            content["displayname"] = row.displayname
        if row.avatar_url is not None:
            content["avatar_url"] = row.avatar_url
        return content

    async def get_presence(self, viewer: str, user_id: str) -> dict[str, Any]:
        """A user's presence, for themselves or anyone sharing a room with them (else 403)."""
        async def run(conn: asyncpg.Connection) -> PresenceRow | None:
            if viewer != user_id and not await presence_store.shares_room(conn, viewer, user_id):
                raise forbidden("You are not allowed to see their presence")
            return await presence_store.get_presence(conn, user_id)

        row = await self.db.run(run)
        if row is None:
            return {"presence": OFFLINE}
        return self.content(row, self.clock.now_ms())

    async def events(
        self, conn: asyncpg.Connection, user_id: str, after: int, upto: int
    ) -> Sequence[dict[str, Any]]:
        """For /sync: `m.presence` events of the user and their roommates changed in
        (after, upto].

        An initial sync (after 0) leaves out users who are offline: nothing changed for it.
        """
        if after >= upto:
            return []
        rows = await presence_store.get_changes_for_roommates(conn, user_id, after, upto)
        return self._events(rows, skip_offline=after == 0)

    async def current_events(
        self, conn: asyncpg.Connection, user_ids: Sequence[str], upto: int
    ) -> Sequence[dict[str, Any]]:
        """For /sync: the presence of users the syncing user just came to share a room with,
        whether or not it changed since their token (offline ones left out, as in an initial
        sync)."""
        if not user_ids:
            return []
        rows = await presence_store.get_presence_of(conn, user_ids, upto)
        return self._events(rows, skip_offline=True)

    def _events(
        self, rows: Sequence[PresenceRow], *, skip_offline: bool
    ) -> list[dict[str, Any]]:
        now = self.clock.now_ms()
        events = []
        for row in rows:
            content = self.content(row, now)
            if skip_offline and content["presence"] == OFFLINE:
                continue
            events.append({"type": "m.presence", "sender": row.user_id, "content": content})
        return events


async def _set_offline(
    conn: asyncpg.Connection, *, user_id: str, idle_before: int, slot: Slot
) -> bool:
    """Set an idle user offline; the position is only taken when they still are idle."""
    if not await presence_store.lock_if_idle(conn, user_id, idle_before):
        return False
    await presence_store.set_offline(conn, user_id, slot.position)
    return True
