"""Member events that follow a profile change (spec "Events on Change of Profile Information").

Theory of operation. When a local user's `displayname` or `avatar_url` changes, the profile
service queues the user (`profile_member_updates`, in the change's transaction) and wakes
this service's single background task. The task takes the queue oldest first and, for each
room the user is joined to whose member event does not carry the profile's values yet, sends
a new join member event with them, as any local event (so other servers get it through the
federation sender like any other). The new content is the profile's fields and `join`, as
Synapse does: a per-room name is replaced by the profile's.

Sends are paced at `MEMBER_EVENTS_PER_SECOND` for the whole server, so a user in thousands of
rooms, or many users renaming at once, cannot flood the rooms or the federation queues. A
room whose member event is already current costs no send, so a pass resumed after a restart
(the queue entry stays until a pass completes) or a second change made during a pass only
sends what is still missing. Each send is made only while the user is still joined
(`if_joined`, checked under the room's lock), so it never re-joins someone who left meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg

from homeserver.errors import MatrixError
from homeserver.services.clock import Clock
from homeserver.services.profiles import MEMBER_FIELDS, member_content, profile_of
from homeserver.services.rooms.local import LocalEvents
from storage import profiles as store
from storage import state as state_store
from storage.database import Database

log = logging.getLogger(__name__)

MEMBER_EVENTS_PER_SECOND = 10.0
# Queue entries read at a time.
_BATCH = 100


class ProfilePropagation:
    def __init__(
        self, db: Database, local: LocalEvents, clock: Clock,
        *, events_per_second: float = MEMBER_EVENTS_PER_SECOND,
    ) -> None:
        self._db = db
        self._local = local
        self._clock = clock
        self._interval_s = 1.0 / events_per_second
        self._next_send = 0.0  # monotonic seconds: the earliest the next send may go
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A profile change was queued (called after its transaction committed)."""
        self._wake.set()

    async def run(self) -> None:
        """Background task: work through the queue whenever woken, and once at start for
        what a restart interrupted."""
        self._wake.set()
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._drain()
            except Exception:
                log.exception("bringing member events up to date with profiles failed")

    async def _drain(self) -> None:
        while entries := await self._db.run(lambda c: store.get_member_updates(c, _BATCH)):
            for entry in entries:
                user_id, generation = entry["user_id"], entry["generation"]
                try:
                    await self._update_rooms(user_id)
                except Exception:
                    # Dropped rather than retried forever; the user's next change queues anew.
                    log.exception("updating the member events of %s failed", user_id)
                await self._done(user_id, generation)

    async def _done(self, user_id: str, generation: int) -> None:
        """Drop the user's queue entry, unless a change came during the pass."""
        await self._db.transaction(
            lambda conn: store.delete_member_update(conn, user_id, generation),
            name="delete_member_update",
        )

    async def _update_rooms(self, user_id: str) -> None:
        """Send a member event with the user's current profile to each joined room whose
        member event is behind it."""
        async def read(conn: asyncpg.Connection) -> tuple[dict[str, Any], list[str]]:
            row = await store.get_profile(conn, user_id)
            if row is None:
                return {}, []
            profile = profile_of(row)
            joined = await state_store.get_rooms_for_user(conn, user_id, ["join"])
            pdus = await self._local.cache.get_pdus(conn, [r["event_id"] for r in joined])
            behind = [
                r["room_id"] for r in joined
                if _member_fields(pdus.get(r["event_id"], {}).get("content", {}))
                != _member_fields(profile)
            ]
            return profile, behind

        profile, rooms = await self._db.run(read)
        content = member_content(profile, "join")
        for room_id in rooms:
            await self._pace()
            try:
                await self._local.send(
                    room_id, user_id, "m.room.member", content, state_key=user_id,
                    if_joined=True,
                )
            except MatrixError as e:  # left, banned, or the room refuses: nothing to update
                log.info("no profile update of %s in %s: %s", user_id, room_id, e.error)

    async def _pace(self) -> None:
        """Wait for the next send's turn under the server-wide rate."""
        now = self._clock.monotonic()
        if self._next_send > now:
            await asyncio.sleep(self._next_send - now)
        self._next_send = max(now, self._next_send) + self._interval_s


def _member_fields(content: dict[str, Any]) -> dict[str, Any]:
    return {k: content.get(k) for k in MEMBER_FIELDS}
