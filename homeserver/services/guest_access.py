"""Guests leave a room whose guest access is revoked (spec "Guest Access", "Server behaviour":
"If the `m.room.guest_access` event is changed to stop this from being the case, the server
MUST set those users' `m.room.member` state to `leave`").

Theory of operation. As an observer of the room writes, this service notes every room that
received an `m.room.guest_access` event, whether one of our users sent it or another server
did, once the event is committed. Its background task then reads the room's current state:
unless guests may still join, each of this server's guest accounts joined to the room leaves
it, by a leave event of its own (always allowed by the auth rules, as Synapse does it), which
reaches other servers like any event. Each server removes its own guests; whether a user is a
guest is never told to other servers. The leave is sent only while the guest is still joined.

The rooms noted are held in memory only: a process that stops between committing the change and
sending the leaves forgets them. So the task starts by asking storage, in one query, for the rooms
where a guest of this server is still joined although the current `m.room.guest_access` is not
`can_join`, and handles them like rooms just noted: the spec's MUST holds across a crash, at the
next start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import asyncpg

from homeserver.errors import MatrixError
from homeserver.protocol.state_keys import GUEST_ACCESS, StateKey
from homeserver.services.join_authorisation import guests_may_join
from homeserver.services.rooms.local import LocalEvents
from homeserver.services.rooms.writes import EventWrites, PersistedEvent
from storage import accounts as accounts_store
from storage.database import Database

log = logging.getLogger(__name__)


class GuestEviction:
    def __init__(self, db: Database, local: LocalEvents) -> None:
        self._db = db
        self._local = local
        self._rooms: set[str] = set()  # rooms whose guest access changed, not yet handled
        self._wake = asyncio.Event()

    async def on_event(
        self, conn: asyncpg.Connection, event: PersistedEvent,
        state_before: Mapping[StateKey, Mapping[str, Any]], members: set[str],
        writes: EventWrites,
    ) -> None:
        """Nothing to stage with the event: guests leave once it is committed."""

    def committed(self, writes: EventWrites) -> None:
        for new in writes.events:
            stored = new.stored
            if (stored.type, stored.state_key) == GUEST_ACCESS and new.rejection_reason is None:
                self._rooms.add(stored.room_id)
                self._wake.set()

    async def run(self) -> None:
        """Background task: first the rooms a previous process left guests in, then the rooms
        noted since the last wake-up."""
        try:
            self._rooms.update(
                await self._db.run(accounts_store.get_rooms_barring_joined_guests)
            )
        except Exception:
            log.exception("finding the rooms guests were not removed from failed")
        self._wake.set()
        while True:
            await self._wake.wait()
            self._wake.clear()
            rooms, self._rooms = self._rooms, set()
            for room_id in sorted(rooms):
                try:
                    await self._evict(room_id)
                except Exception:
                    log.exception("removing the guests of %s failed", room_id)

    async def _evict(self, room_id: str) -> None:
        async def guests(conn: asyncpg.Connection) -> list[str]:
            if await guests_may_join(conn, self._local.cache, room_id):
                return []
            return await accounts_store.get_joined_guests(conn, room_id)

        for guest in await self._db.run(guests):
            try:
                await self._local.send(
                    room_id, guest, "m.room.member", {"membership": "leave"}, state_key=guest,
                    if_joined=True,
                )
            except MatrixError as e:  # left meanwhile
                log.info("guest %s did not leave %s: %s", guest, room_id, e.error)
