"""Typing notifications and receipts: the per-room ephemeral events /sync delivers.

Typing lives in memory only (the spec lets a server forget who stopped typing): each room keeps
who is typing until when, and the typing-stream position of its last change. An expiry timer per
typist removes the entry and counts as a change, so long-polls see a typist stop even when the
client never says so. Receipts are durable: one row per (room, type, user, thread) carrying its
receipt-stream position; `m.read.private` receipts are only ever shown to their owner.

Other servers' users arrive through `set_remote` (from their servers' EDUs) and take the same
path as local ones; local users' typing and public receipts go out to the other servers in the
room through `edus`, when federation is on.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import asyncpg

from homeserver.errors import forbidden, invalid_param, not_found
from homeserver.services.account_data import AccountDataService
from homeserver.services.clock import Clock
from homeserver.services.notifier import Notifier
from homeserver.services.outbound_edus import Edus
from homeserver.services.rooms.view import RoomView
from homeserver.services.stream_wakes import StreamWakes
from storage import events as events_store
from storage import receipts as receipts_store
from storage.database import Database
from storage.streams import StreamIdGenerator

DEFAULT_TYPING_TIMEOUT_MS = 30_000
MAX_TYPING_TIMEOUT_MS = 120_000
# A typing EDU carries no timeout; its server renews it while the user types (as clients do).
REMOTE_TYPING_TIMEOUT_MS = 60_000
PUBLIC_RECEIPT = "m.read"
PRIVATE_RECEIPT = "m.read.private"
FULLY_READ = "m.fully_read"
RECEIPT_TYPES = (PUBLIC_RECEIPT, PRIVATE_RECEIPT, FULLY_READ)

log = logging.getLogger(__name__)


async def _require_joined(db: Database, engine: RoomView, user_id: str, room_id: str) -> None:
    members = await db.run(lambda conn: engine.joined_members(conn, room_id))
    if user_id not in members:
        raise forbidden("You are not joined to this room")


class TypingService:
    def __init__(
        self, db: Database, engine: RoomView, stream: StreamIdGenerator, notifier: Notifier,
        edus: Edus,
    ) -> None:
        self.db = db
        self.engine = engine
        self.stream = stream
        self.notifier = notifier
        # room -> typist -> expiry timer (None where another process keeps the timer).
        self._typing: defaultdict[str, dict[str, asyncio.TimerHandle | None]] = defaultdict(dict)
        self._serial: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # Told (room, typists, position) after every change (replication mirrors it).
        self.on_change: list[Callable[[str, list[str], int], None]] = []
        self.edus = edus  # where local users' typing goes to other servers

    async def set_typing(
        self, user_id: str, room_id: str, typing: bool, timeout_ms: int | None
    ) -> None:
        """Start (for timeout_ms, clamped) or stop `user_id` typing in a room they are joined to."""
        await _require_joined(self.db, self.engine, user_id, room_id)
        timeout = min(timeout_ms or DEFAULT_TYPING_TIMEOUT_MS, MAX_TYPING_TIMEOUT_MS)
        if not self._apply(room_id, user_id, typing, timeout):
            return
        await self._changed(room_id)
        await self._federate(room_id, user_id, typing)

    async def set_remote(self, user_id: str, room_id: str, typing: bool) -> None:
        """Another server's user started or stopped typing (its server vouches for them);
        ignored unless they are joined to the room."""
        members = await self.db.run(lambda conn: self.engine.joined_members(conn, room_id))
        if user_id in members and self._apply(room_id, user_id, typing, REMOTE_TYPING_TIMEOUT_MS):
            await self._changed(room_id)

    def _apply(self, room_id: str, user_id: str, typing: bool, timeout_ms: int) -> bool:
        """Start (or renew) or stop a typist's timer; False when nothing changed."""
        typists = self._typing[room_id]
        previous = typists.pop(user_id, None)
        if previous is not None:
            previous.cancel()
        if typing:
            typists[user_id] = asyncio.get_running_loop().call_later(
                timeout_ms / 1000, self._expire, room_id, user_id
            )
        return typing or previous is not None  # stopping while not typing changes nothing

    async def _federate(self, room_id: str, user_id: str, typing: bool) -> None:
        if self.edus.sends_for(user_id):
            await self.edus.to_room(
                room_id, "m.typing", {"room_id": room_id, "user_id": user_id, "typing": typing}
            )

    def _expire(self, room_id: str, user_id: str) -> None:
        self._typing[room_id].pop(user_id, None)
        task = asyncio.get_running_loop().create_task(self._expired(room_id, user_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _expired(self, room_id: str, user_id: str) -> None:
        try:
            await self._changed(room_id)
            await self._federate(room_id, user_id, False)
        except Exception:  # a timer's task has nobody to report to
            log.exception("ending %s typing in %s failed", user_id, room_id)

    async def _changed(self, room_id: str) -> None:
        with self.stream.allocate() as slot:
            self._serial[room_id] = slot.position
        for hook in self.on_change:
            hook(room_id, sorted(self._typing.get(room_id, ())), slot.position)
        members = await self.db.run(lambda conn: self.engine.joined_members(conn, room_id))
        self.notifier.notify_users(members)

    async def close(self) -> None:
        """Cancel every expiry timer and wait out the expiries already running: they use the
        database pool, which the process closes next."""
        for typists in self._typing.values():
            for timer in typists.values():
                if timer is not None:
                    timer.cancel()
        self._typing.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def changed_since(self, position: int) -> list[tuple[str, list[str], int]]:
        """(room, typists, position) of every room whose typists changed after `position`."""
        return [
            (room_id, sorted(self._typing.get(room_id, ())), serial)
            for room_id, serial in self._serial.items() if serial > position
        ]

    # ---- in a process that shows another one's typing (a worker) -----------------------------

    def mirror(self, room_id: str, user_ids: Iterable[str], position: int, *, add: bool) -> None:
        """Show the typists of a room as the writing process reported them at `position`
        (`add`: more typists of the same report, which came in several parts)."""
        typists = self._typing[room_id]
        if not add:
            typists.clear()
        typists.update(dict.fromkeys(user_ids))
        self._serial[room_id] = max(self._serial.get(room_id, 0), position)

    def clear_mirror(self, position: int) -> None:
        """The writing process restarted and forgot its typists: so does this one."""
        for room_id, typists in self._typing.items():
            if typists:
                typists.clear()
                self._serial[room_id] = max(self._serial.get(room_id, 0), position)

    def events(
        self, room_ids: Iterable[str], after: int | None, upto: int | None = None
    ) -> dict[str, dict[str, Any]]:
        """room_id -> m.typing event for rooms whose typists changed after `after` (and, with
        `upto`, not after it: a worker may mirror a change before its stream position
        arrives, and the token it hands out must cover what it sends).

        An initial sync (after None) gets the rooms where someone is typing now.
        """
        out: dict[str, dict[str, Any]] = {}
        for room_id in room_ids:
            typists = self._typing.get(room_id)
            if after is None:
                changed = bool(typists)
            else:
                serial = self._serial.get(room_id, 0)
                changed = serial > after and (upto is None or serial <= upto)
            if changed:
                out[room_id] = {
                    "type": "m.typing", "content": {"user_ids": sorted(typists or ())},
                }
        return out


class ReceiptsService:
    def __init__(
        self, db: Database, engine: RoomView, stream: StreamIdGenerator, notifier: Notifier,
        account_data: AccountDataService, edus: Edus, clock: Clock,
    ) -> None:
        self.db = db
        self.clock = clock
        self.engine = engine
        self.stream = stream
        self.notifier = notifier
        self.wakes = StreamWakes(notifier, stream)
        self.account_data = account_data
        # Told (user, room) after a receipt that moves where the user has read up to.
        self.on_read: list[Callable[[str, str], None]] = []
        # Told (user, room, receipt type -> event ID, data) after every receipt stored.
        self.on_receipt: list[Callable[[str, str, dict[str, str], dict[str, Any]], None]] = []
        self.edus = edus  # where local users' public receipts go to other servers

    async def mark_read(
        self, user_id: str, room_id: str, markers: dict[str, str], thread_id: str | None = None
    ) -> None:
        """Apply receipts and the fully-read marker: receipt type -> event ID.

        Serves both `/receipt/{type}/{eventId}` and `/read_markers`.
        """
        for receipt_type in markers:
            if receipt_type not in RECEIPT_TYPES:
                raise invalid_param(f"Unknown receipt type {receipt_type}")
        if thread_id is not None and (not thread_id or FULLY_READ in markers):
            raise invalid_param("thread_id must be a non-empty string on m.read receipts")
        await _require_joined(self.db, self.engine, user_id, room_id)
        found = await self.db.run(lambda conn: events_store.get_events(conn, markers.values()))
        for event_id in markers.values():
            stored = found.get(event_id)
            if stored is None or stored.room_id != room_id:
                raise not_found(f"Event {event_id} not found in this room")
        fully_read = markers.get(FULLY_READ)
        if fully_read is not None:
            await self.account_data.set(user_id, room_id, FULLY_READ, {"event_id": fully_read})
        receipts = {t: e for t, e in markers.items() if t != FULLY_READ}
        if not receipts:
            return
        data: dict[str, Any] = {"ts": self.clock.now_ms()}
        if thread_id is not None:
            data["thread_id"] = thread_id
        members = await self._store(user_id, room_id, receipts, data)
        public = receipts.get(PUBLIC_RECEIPT)
        if public is not None:
            read = {user_id: {"event_ids": [public], "data": data}}
            await self.edus.to_servers_of(
                members, "m.receipt", {room_id: {PUBLIC_RECEIPT: read}}
            )

    async def set_remote(
        self, user_id: str, room_id: str, event_id: str, data: dict[str, Any]
    ) -> None:
        """Another server's user's public receipt (its server vouches for them); ignored
        unless they are joined to the room. `data` is {ts, thread_id?}."""
        members = await self.db.run(lambda conn: self.engine.joined_members(conn, room_id))
        if user_id in members:
            await self._store(user_id, room_id, {PUBLIC_RECEIPT: event_id}, data)

    async def _store(
        self, user_id: str, room_id: str, receipts: dict[str, str], data: dict[str, Any],
    ) -> set[str]:
        """Write receipts (type -> event ID; `data` is {ts, thread_id?}) and wake who sees
        them: the room's members for a public one (returned), else the user alone."""
        thread_id = data.get("thread_id")
        async def store(conn: asyncpg.Connection, position: int) -> None:
            for receipt_type, event_id in receipts.items():
                await receipts_store.upsert_receipt(
                    conn, room_id=room_id, receipt_type=receipt_type, user_id=user_id,
                    thread_id=thread_id or "", event_id=event_id, data=data, stream_id=position,
                )

        with self.stream.allocate() as slot:
            await self.db.transaction(lambda conn: store(conn, slot.position), name="receipts")
        for listener in self.on_read:
            listener(user_id, room_id)
        for hook in self.on_receipt:
            hook(user_id, room_id, receipts, data)
        if PUBLIC_RECEIPT in receipts:
            members = await self.db.run(lambda conn: self.engine.joined_members(conn, room_id))
            self.wakes.add(slot.last_written, members | {user_id})
            return members
        self.wakes.add(slot.last_written, [user_id])
        return set()

    async def events(
        self, conn: asyncpg.Connection, user_id: str, room_ids: list[str], after: int, upto: int
    ) -> dict[str, dict[str, Any]]:
        """room_id -> one batched m.receipt event with the receipts changed in (after, upto]."""
        if after >= upto or not room_ids:
            return {}
        contents: dict[str, dict[str, Any]] = {}
        for r in await receipts_store.get_receipts(conn, room_ids, after, upto):
            if r.receipt_type == PRIVATE_RECEIPT and r.user_id != user_id:
                continue
            by_event = contents.setdefault(r.room_id, {}).setdefault(r.event_id, {})
            by_event.setdefault(r.receipt_type, {})[r.user_id] = r.data
        return {
            room_id: {"type": "m.receipt", "content": content}
            for room_id, content in contents.items()
        }

