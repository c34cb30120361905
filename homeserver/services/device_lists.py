"""Device-list tracking: who must re-download whose keys ("Tracking the device list for a user").

Theory of operation. A change to a user's devices or cross-signing keys takes the next position
of the device-list stream and is recorded in `device_list_changes`; then every local user who
shares a joined room with them (and the user themselves, for their other devices) is woken.
A syncing user's `device_lists` between two tokens is then:

- `changed`: users sharing a room with them whose device list moved in (since, upto]; users who
  joined a room they share in the events range; everyone in a room they joined in that range;
- `left`: users with a membership change in that range (theirs or the syncer's) who no longer
  share any room with them.

The spec lets a server report a user in `changed` when a room is newly shared even if another
room already was; that is what happens here. Nothing moved in either stream costs no query.

Over federation the stream positions double as the `stream_id`s of `m.device_list_update`: a
local user's change of one device is handed to the `publisher` with its position and the
user's previous one (`prev_id`), which is also the `stream_id` that `user/devices` answers
with. Another server's user's updates are followed per user (`remote_update`): one that
builds on a position we have not seen asks for a resync, and an applied one or a resync is
recorded as a change of that user here, so local clients sharing a room with them see it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import asyncpg

from homeserver.services.notifier import Notifier
from homeserver.services.outbound_edus import users_sharing_room
from homeserver.services.rooms.view import RoomView
from homeserver.services.stream_wakes import StreamWakes
from homeserver.services.streams import StreamToken
from storage import device_lists as store
from storage.database import Database
from storage.streams import Slot, StreamIdGenerator

GONE = ("leave", "ban")


@dataclass(frozen=True, slots=True)
class DeviceChange:
    """One device's change, numbered for `m.device_list_update`."""

    device_id: str
    stream_id: int
    prev_id: int  # the user's previous change (0: none)


class DeviceListPublisher(Protocol):
    async def devices_changed(
        self, user_id: str, changes: Sequence[DeviceChange], audience: set[str]
    ) -> None:
        """Tell the servers of `audience` (the users sharing a room with `user_id`)."""
        ...


class DeviceListService:
    def __init__(
        self, db: Database, gen: StreamIdGenerator, notifier: Notifier, engine: RoomView,
        publisher: DeviceListPublisher,
    ) -> None:
        self.db = db
        self.gen = gen
        self.notifier = notifier
        self.wakes = StreamWakes(notifier, gen)
        self.engine = engine
        # Told the user ID after every recorded change (caches keyed by a user's devices).
        self.on_change: list[Callable[[str], None]] = []
        self.publisher = publisher  # tells other servers about local users' device changes

    async def mark_changed(self, user_id: str, device_ids: Sequence[str] = ()) -> None:
        """Record that `user_id`'s devices (these ones, one position each) or cross-signing
        keys (no device) changed and wake who cares."""

        async def record(conn: asyncpg.Connection, slot: Slot) -> list[DeviceChange]:
            slot.restart()
            prev = await store.get_latest_change(conn, user_id)
            if not device_ids:
                await store.insert_change(conn, slot.position, user_id)
                return []
            changes = []
            for i, device_id in enumerate(device_ids):
                await store.insert_change(conn, slot.nth(i), user_id)
                changes.append(DeviceChange(device_id, slot.nth(i), prev))
                prev = slot.nth(i)
            return changes

        try:
            with self.gen.allocate() as slot:
                changes = await self.db.transaction(
                    lambda conn: record(conn, slot), name="device_list_change"
                )
        finally:  # the devices changed even if recording it failed
            for listener in self.on_change:
                listener(user_id)
        audience = await self.db.run(lambda c: self._audience(c, user_id))
        self.wakes.add(slot.last_written, audience)
        if changes:
            await self.publisher.devices_changed(user_id, changes, audience)

    # ---- other servers' users ---------------------------------------------------------------

    async def remote_update(self, user_id: str, stream_id: int, prev_ids: Sequence[int]) -> bool:
        """Apply an `m.device_list_update` of another server's user; False when it builds on
        an update we have not seen (or we never followed the user), so the caller resyncs.
        An update at or below the position we have is a repeat and changes nothing."""
        seen = await self.db.run(lambda conn: store.get_remote_stream(conn, user_id))
        if seen is not None and stream_id <= seen:
            return True
        if any(prev > (seen or 0) for prev in prev_ids):
            return False
        await self.remote_resynced(user_id, stream_id)
        return True

    async def remote_resynced(self, user_id: str, stream_id: int | None) -> None:
        """Another server's user's device list changed, as of `stream_id` (None: unknown,
        their server could not say): local clients are told to fetch their keys again."""
        if stream_id is not None:
            await self.db.transaction(
                lambda conn: store.upsert_remote_stream(conn, user_id, stream_id),
                name="remote_device_list_stream",
            )
        await self.mark_changed(user_id)

    async def _membership_changes(
        self, conn: asyncpg.Connection, user_id: str, after: int, upto: int
    ) -> list[tuple[str, str, str | None]]:
        """(room, member, membership) of each member's latest change in (after, upto] in the
        rooms of `user_id`: from the engine's recent events when they cover the range."""
        rooms = await self.engine.memberships(conn, user_id)
        events = self.engine.recent.member_events(rooms, after, upto)
        if events is None:
            return [
                (r["room_id"], r["user_id"], r["membership"])
                for r in await store.get_membership_changes_in_rooms_of(
                    conn, user_id, after, upto
                )
            ]
        latest = {(e.room_id, e.state_key): e for e in events}  # oldest first: the last wins
        return [
            (room_id, member, json.loads(e.json)["content"].get("membership"))
            for (room_id, member), e in latest.items() if member is not None
        ]

    async def _audience(self, conn: asyncpg.Connection, user_id: str) -> set[str]:
        """The user and every local user in one of their joined rooms (from the engine cache)."""
        return await users_sharing_room(self.engine, conn, user_id) | {user_id}

    async def changes(
        self, conn: asyncpg.Connection, user_id: str, since: StreamToken, upto: StreamToken
    ) -> tuple[list[str], list[str]]:
        """(changed, left) for `user_id` between two sync tokens, both sorted."""
        changed: set[str] = set()
        if since.device_lists < upto.device_lists:
            changed = await store.get_changed_users_sharing(
                conn, user_id, since.device_lists, upto.device_lists
            )
        if since.events >= upto.events:
            return sorted(changed), []
        rows = await self._membership_changes(conn, user_id, since.events, upto.events)
        if not rows:
            return sorted(changed), []
        left: set[str] = set()
        my_joins: list[str] = []
        my_leaves: list[str] = []
        for room_id, member, membership in rows:
            if member == user_id:
                if membership == "join":
                    my_joins.append(room_id)
                elif membership in GONE:
                    my_leaves.append(room_id)
            elif membership == "join":
                changed.add(member)
            elif membership in GONE:
                left.add(member)
        if my_joins:
            changed |= await store.get_joined_users_in_rooms(conn, my_joins)
        if my_leaves:
            left |= await store.get_joined_users_in_rooms(conn, my_leaves)
        sharing = await store.get_users_sharing_room(conn, user_id) | {user_id}
        return sorted(changed & sharing), sorted(left - sharing)
