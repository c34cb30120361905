"""Typing, receipts and presence for the application services that asked for ephemeral events
(application-service-api "Pushing ephemeral data", `receive_ephemeral`).

The typing, receipts and presence services tell this class of every change through their
hooks, which are synchronous; the changes are queued in memory and turned into queue rows
(`AppServiceSender.queue_ephemeral`) one after the other by one task, so that an appservice
sees them in the order they happened. Who gets what follows the spec: `m.typing` and `m.receipt`
(with the room's ID at the top level) go to the appservices interested in the room; a private
read receipt only to those holding its user; `m.presence` to the appservices holding the user
or interested in a room the user is joined to. Ephemeral data that had not reached the database
when the process stopped is lost, as it would be for a client.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from homeserver.services.appservice_interest import AppServiceInterest
from homeserver.services.appservice_sender import AppServiceSender
from homeserver.services.presence import PresenceService
from homeserver.services.rooms.view import RoomView
from storage.database import Database

log = logging.getLogger(__name__)

PRIVATE_RECEIPT = "m.read.private"


class AppServiceEphemeral:
    def __init__(
        self, db: Database, engine: RoomView, interest: AppServiceInterest,
        sender: AppServiceSender, presence: PresenceService,
    ) -> None:
        self.db = db
        self.engine = engine
        self.interest = interest
        self.sender = sender
        self.presence = presence
        self._wanting = frozenset(r.id for r in sender.wants_ephemeral())
        self._changes: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue()

    @property
    def active(self) -> bool:
        """Whether any appservice receives ephemeral events (else the hooks are not wired)."""
        return bool(self._wanting)

    # ---- the hooks ------------------------------------------------------------------------

    def typing_changed(self, room_id: str, typists: list[str], position: int) -> None:
        event = {"type": "m.typing", "room_id": room_id, "content": {"user_ids": typists}}
        self._changes.put_nowait(lambda: self._to_room(room_id, event))

    def receipt_stored(
        self, user_id: str, room_id: str, receipts: dict[str, str], data: dict[str, Any]
    ) -> None:
        for receipt_type, event_id in receipts.items():
            event = {
                "type": "m.receipt", "room_id": room_id,
                "content": {event_id: {receipt_type: {user_id: data}}},
            }
            only = self.interest.of_user(user_id) if receipt_type == PRIVATE_RECEIPT else None
            self._changes.put_nowait(functools.partial(self._to_room, room_id, event, only=only))

    def presence_changed(self, user_id: str) -> None:
        self._changes.put_nowait(lambda: self._presence(user_id))

    # ---- the task -------------------------------------------------------------------------

    async def run(self) -> None:
        """Queue the changes for the appservices, in the order they happened."""
        while True:
            change = await self._changes.get()
            try:
                await change()
            except Exception:
                log.exception("queueing ephemeral data for appservices failed")

    async def _to_room(
        self, room_id: str, event: dict[str, Any], *, only: frozenset[str] | None = None
    ) -> None:
        interested = self.interest.cached_room(room_id)
        if interested is None:  # typing and receipts in a busy room need no connection
            interested = await self.db.run(lambda conn: self.interest.of_room(conn, room_id))
        targets = interested & self._wanting
        if only is not None:
            targets &= only
        await self.sender.queue_ephemeral(sorted(targets), event)

    async def _presence(self, user_id: str) -> None:
        async def interested(conn: asyncpg.Connection) -> frozenset[str]:
            memberships = await self.engine.memberships(conn, user_id)
            joined = [m.room_id for m in memberships.values() if m.membership == "join"]
            return self.interest.of_user(user_id) | await self.interest.of_rooms(conn, joined)

        targets = await self.db.run(interested) & self._wanting
        if targets:
            content = await self.presence.get_presence(user_id, user_id)
            event = {"type": "m.presence", "sender": user_id, "content": content}
            await self.sender.queue_ephemeral(sorted(targets), event)
