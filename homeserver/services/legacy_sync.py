"""The deprecated r0-era sync API: `GET /events` (the event stream, also peeking with
`room_id`), `GET /initialSync`, `GET /rooms/{roomId}/initialSync` and `GET /events/{eventId}`
(old_sync.yaml, peeking_events.yaml, room_initial_sync.yaml). Test suites and bots still use them.

Theory of operation. Nothing here keeps state of its own: these are views over what /sync and the
room read endpoints already serve. A token is a `StreamToken`, so a /sync `next_batch` works as
`from` and the `end` of /events or /initialSync works as a `since`. /events returns the room
events in (from, now] of the rooms the user is joined to (or whose membership of the user changed
in that window), oldest first, at most `MAX_CHUNK` of them (then `end` stops at the last one
returned), through the same visibility filter and client format as /sync, and long-polls on the
notifier as /sync does. With `room_id` it reads that one room, for a member or for anyone while
the room is world_readable; a peeker who is not joined is never woken by the room's events (the
notifier is keyed by user), so a peek answers at once instead of waiting. The initialSync rooms
are read through `RoomReads` (state and /messages), so a peeker sees exactly what those show.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any

import asyncpg

from homeserver.errors import forbidden, not_found
from homeserver.services.account_data import GLOBAL
from homeserver.services.event_views import filter_visible, serialize_events, world_readable
from homeserver.services.filters import EventFilter
from homeserver.services.ignored_users import ignored_users
from homeserver.services.notifier import answered_after_wake, wait_for_wake
from homeserver.services.requester import Requester
from homeserver.services.room_reads import RoomReads
from homeserver.services.streams import StreamToken
from homeserver.services.sync import SyncService
from storage import directory as directory_store
from storage import events as events_store
from storage import state as state_store

MAX_CHUNK = 100


class LegacySync:
    """Built per request from the services /sync and the room reads already run."""

    def __init__(self, sync: SyncService, reads: RoomReads) -> None:
        self.sync = sync
        self.reads = reads
        self.db = sync.db
        self.engine = sync.engine

    async def events(
        self, requester: Requester, since: StreamToken | None, timeout_ms: int,
        room_id: str | None,
    ) -> dict[str, Any]:
        """`GET /events`: what happened since `since` (now, when absent), waiting up to the
        timeout while nothing did."""
        start = since if since is not None else self.sync.streams.current()
        peek = room_id is not None and not await self.db.run(
            lambda conn: self._joined(conn, requester.user_id, room_id)
        )
        if peek and room_id is not None:
            if not await self.db.run(lambda conn: world_readable(conn, self.engine, room_id)):
                raise forbidden(f"{room_id} is not world-readable and you are not joined")
        timeout_ms = min(max(timeout_ms, 0), self.sync.config.limits.sync_timeout_max_ms)
        deadline = self.sync.clock.monotonic() + timeout_ms / 1000
        woken_at = None
        while True:
            with self.sync.notifier.listen(requester.user_id) as woken:
                upto = self.sync.streams.current().events
                chunk, end = await self.db.run(
                    functools.partial(self._chunk, requester=requester, after=start.events,
                                      upto=upto, room_id=room_id)
                )
                body = {
                    "chunk": chunk, "start": start.encode(),
                    "end": replace(start, events=max(end, start.events)).encode(),
                }
                remaining = deadline - self.sync.clock.monotonic()
                if chunk or peek or remaining <= 0:
                    if chunk:
                        answered_after_wake(woken_at)
                    return body
                if not await wait_for_wake(woken, remaining):
                    return body
                woken_at = woken.result()

    async def _joined(self, conn: asyncpg.Connection, user_id: str, room_id: str) -> bool:
        row = await state_store.get_membership(conn, room_id, user_id)
        return row is not None and row["membership"] == "join"

    async def _chunk(
        self, conn: asyncpg.Connection, requester: Requester, after: int, upto: int,
        room_id: str | None,
    ) -> tuple[list[dict[str, Any]], int]:
        if room_id is not None:
            rooms = [room_id]
        else:
            memberships = await self.engine.memberships(conn, requester.user_id)
            rooms = [
                m.room_id for m in memberships.values()
                if m.membership == "join" or m.stream_ordering > after
            ]
        if after >= upto or not rooms:
            return [], upto
        changed = await events_store.get_rooms_changed(conn, rooms, after, upto)
        stored = []
        for changed_room in changed:
            stored += await events_store.get_room_events(
                conn, changed_room, after=after, upto=upto, limit=MAX_CHUNK + 1,
                newest_first=False,
            )
        stored.sort(key=lambda e: e.stream_ordering or 0)
        end = upto
        if len(stored) > MAX_CHUNK:
            stored = stored[:MAX_CHUNK]
            end = stored[-1].stream_ordering or upto
        visible = await filter_visible(
            conn, self.engine, requester.user_id, stored,
            ignored=await ignored_users(conn, requester.user_id),
        )
        now = self.sync.clock.now_ms()
        return await serialize_events(conn, self.engine, visible, requester, now=now), end

    async def initial_sync(
        self, requester: Requester, limit: int, archived: bool
    ) -> dict[str, Any]:
        """`GET /initialSync`: every room of the user with its state and latest messages."""
        user_id = requester.user_id
        upto = self.sync.streams.current()

        async def load(conn: asyncpg.Connection) -> tuple[Any, ...]:
            memberships = await self.engine.memberships(conn, user_id)
            data = await self.sync.account_data.changes(conn, user_id, 0, upto.account_data)
            presence = await self.sync.presence.events(conn, user_id, 0, upto.presence)
            return memberships, data, presence

        memberships, data, presence = await self.db.run(load)
        wanted = ("join", "invite", "leave", "ban") if archived else ("join", "invite")
        rooms = []
        for m in memberships.values():
            if m.forgotten or m.membership not in wanted:
                continue
            room: dict[str, Any] = {"room_id": m.room_id, "membership": m.membership}
            if m.membership == "invite":
                room["invite"] = await self._invite(requester, m.event_id)
            else:
                room |= await self.room_initial_sync(requester, m.room_id, limit)
                room["account_data"] = [
                    {"type": e.type, "content": e.content} for e in data if e.room_id == m.room_id
                ]
            rooms.append(room)
        return {
            "end": upto.encode(),
            "rooms": rooms,
            "presence": presence,
            "account_data": [
                {"type": e.type, "content": e.content} for e in data if e.room_id == GLOBAL
            ],
        }

    async def room_initial_sync(
        self, requester: Requester, room_id: str, limit: int
    ) -> dict[str, Any]:
        """`GET /rooms/{roomId}/initialSync`: the room's state and latest messages, as
        /state and /messages show them to this user (a member, a former member as of their
        leave, or anyone while the room is world_readable)."""
        state = await self.reads.state(requester, room_id)
        page = await self.reads.messages(
            requester, room_id, from_token=None, to_token=None, backwards=True, limit=limit,
            event_filter=EventFilter(),
        )
        messages: dict[str, Any] = {"chunk": page["chunk"][::-1], "end": page["start"]}
        if "end" in page:
            messages["start"] = page["end"]

        async def load(conn: asyncpg.Connection) -> tuple[Any, ...]:
            membership = await state_store.get_membership(conn, room_id, requester.user_id)
            public = await directory_store.get_room_visibility(conn, room_id)
            return membership, public

        membership, public = await self.db.run(load)
        room: dict[str, Any] = {
            "room_id": room_id, "state": state, "messages": messages,
            "visibility": "public" if public else "private",
        }
        if membership is not None and membership["membership"] != "knock":
            room["membership"] = membership["membership"]
        return room

    async def event(self, requester: Requester, event_id: str) -> dict[str, Any]:
        """`GET /events/{eventId}`: one event, if the user may see it in its room (the
        same answer as `/rooms/{roomId}/event/{eventId}`, 404 otherwise)."""
        found = await self.db.run(lambda conn: events_store.get_events(conn, [event_id]))
        if event_id not in found:
            raise not_found("Event not found")
        return await self.reads.event(requester, found[event_id].room_id, event_id)

    async def _invite(self, requester: Requester, event_id: str) -> dict[str, Any]:
        """The user's own invite, which they see without being able to read the room."""
        async def load(conn: asyncpg.Connection) -> list[dict[str, Any]]:
            stored = await events_store.get_events(conn, [event_id])
            return await serialize_events(
                conn, self.engine, list(stored.values()), requester, now=self.sync.clock.now_ms()
            )
        return (await self.db.run(load))[0]
