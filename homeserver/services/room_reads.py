"""Reading a room: state, members, single events, context and /messages pagination.

A user who is joined reads the room as it is now; a user who was joined and left (or was
kicked or banned) reads it as it was at their leave, until they forget the room; anyone else
is refused unless history is world-readable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import asyncpg

from homeserver.errors import MatrixError, forbidden, not_found
from homeserver.protocol.canonical_json import loads_bounded
from homeserver.protocol.state_keys import CREATE, StateKey
from homeserver.services.aggregations import serialize_with_relations
from homeserver.services.clock import Clock
from homeserver.services.event_views import (
    drop_expired,
    erased_unless_joined,
    filter_visible,
    load_events,
    world_readable,
)
from homeserver.services.filters import EventFilter, FilterError
from homeserver.services.ignored_users import ignored_users
from homeserver.services.requester import Requester
from homeserver.services.room_history import (
    BACKFILL_POINTS,
    BACKFILL_ROUNDS,
    Page,
    PageQuery,
    RemoteHistory,
    encode_position,
    parse_position,
    position_after,
    position_before,
    read_page,
)
from homeserver.services.rooms.view import RoomView
from homeserver.services.streams import StreamToken
from storage import event_graph
from storage import events as events_store
from storage import state as state_store
from storage.database import Database
from storage.events import StoredEvent
from storage.streams import StreamIdGenerator

# How many of the events nearest a time `timestamp_to_event` considers before answering 404.
NEAR_TS_CANDIDATES = 20


@dataclass(frozen=True, slots=True)
class View:
    """What part of a room a user may read: current state, or the state at their leave."""

    state_group: int | None  # None: the current state
    upto: int | None  # the last stream position they may see; None: no bound


class RoomReads:
    def __init__(
        self, db: Database, engine: RoomView, stream: StreamIdGenerator, history: RemoteHistory,
        clock: Clock,
    ) -> None:
        self.db = db
        self.engine = engine
        self.stream = stream
        self.history = history  # where /messages asks for history from before our join
        self.clock = clock

    async def _serialize(
        self, conn: asyncpg.Connection, stored: Sequence[StoredEvent], requester: Requester,
        ignored: frozenset[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Client events with their bundled aggregations; `ignored`: the requester's ignored
        users, when the caller already read them."""
        return await serialize_with_relations(
            conn, self.engine, stored, requester, now=self.clock.now_ms(), ignored=ignored
        )

    async def _view(self, conn: asyncpg.Connection, room_id: str, user_id: str) -> View:
        """Who may read a room (room_state.yaml 403: "You aren't a member of the room and
        weren't previously a member of the room"): a joined user, and anyone while the room is
        world_readable, read it as it is now; a user who was joined and then left, was kicked
        or banned reads it as it was when their last join ended, until they forget the room
        (Synapse treats a forgotten room as one never joined). A user whose membership never
        was a join (an invitee, a pre-emptive ban, an invitee kicked or refusing) is refused."""
        await self.engine.room_version(conn, room_id)  # 404 for unknown rooms
        row = await state_store.get_membership(conn, room_id, user_id)
        if row is not None and row["membership"] == "join":
            return View(None, None)
        if await world_readable(conn, self.engine, room_id):
            return View(None, None)
        if row is not None and row["membership"] in ("leave", "ban") and not row["forgotten"]:
            departure = await events_store.get_last_departure(conn, row["event_id"])
            if departure is not None:
                return View(departure.state_group, departure.stream_ordering)
        raise forbidden(f"You are not a member of {room_id}")

    async def _state_ids(
        self, conn: asyncpg.Connection, room_id: str, view: View, types: list[str] | None = None
    ) -> dict[StateKey, str]:
        if view.state_group is None:
            return await state_store.get_current_state(conn, room_id, types)
        return await state_store.get_state(conn, view.state_group, types)

    async def state(self, requester: Requester, room_id: str) -> list[dict[str, Any]]:
        async def run(conn: asyncpg.Connection) -> list[dict[str, Any]]:
            view = await self._view(conn, room_id, requester.user_id)
            ids = await self._state_ids(conn, room_id, view)
            return await self._serialize(
                conn, await load_events(conn, list(ids.values())), requester
            )
        return await self.db.run(run)

    async def state_event(
        self, requester: Requester, room_id: str, event_type: str, state_key: str
    ) -> dict[str, Any]:
        async def run(conn: asyncpg.Connection) -> dict[str, Any]:
            view = await self._view(conn, room_id, requester.user_id)
            ids = await self._state_ids(conn, room_id, view, [event_type])
            event_id = ids.get((event_type, state_key))
            if event_id is None:
                raise not_found("Event not found")
            events = await self._serialize(
                conn, await load_events(conn, [event_id]), requester
            )
            return events[0]
        return await self.db.run(run)

    async def members(
        self, requester: Requester, room_id: str, membership: str | None,
        not_membership: str | None,
    ) -> list[dict[str, Any]]:
        async def run(conn: asyncpg.Connection) -> list[dict[str, Any]]:
            view = await self._view(conn, room_id, requester.user_id)
            ids = await self._state_ids(conn, room_id, view, ["m.room.member"])
            events = await self._serialize(
                conn, await load_events(conn, list(ids.values())), requester
            )
            return [
                e for e in events
                if (membership is None or e["content"].get("membership") == membership)
                and (not_membership is None or e["content"].get("membership") != not_membership)
            ]
        return await self.db.run(run)

    async def joined_members(self, requester: Requester, room_id: str) -> dict[str, Any]:
        """rooms.yaml: "The current user must be in the room" (or the room world_readable):
        who left does not learn who is joined now, nor gets a stale list as the current one."""
        view = await self.db.run(lambda conn: self._view(conn, room_id, requester.user_id))
        if view.state_group is not None:
            raise forbidden(f"You are not joined to {room_id}")
        events = await self.members(requester, room_id, "join", None)
        return {
            e["state_key"]: {
                "display_name": e["content"].get("displayname"),
                "avatar_url": e["content"].get("avatar_url"),
            }
            for e in events
        }

    async def event(self, requester: Requester, room_id: str, event_id: str) -> dict[str, Any]:
        async def run(conn: asyncpg.Connection) -> dict[str, Any]:
            try:
                await self._view(conn, room_id, requester.user_id)
            except MatrixError as e:
                # rooms.yaml: 404 "not found or you do not have permission to read this event".
                if e.errcode == "M_FORBIDDEN":
                    raise not_found("Event not found") from None
                raise
            return await self._visible_event(conn, requester, room_id, event_id)
        return await self.db.run(run)

    async def _visible_event(
        self, conn: asyncpg.Connection, requester: Requester, room_id: str, event_id: str
    ) -> dict[str, Any]:
        stored = await load_events(conn, [event_id])
        # Soft-failed events are never relayed to clients (server-server-api "Soft failure").
        hidden = await events_store.get_soft_failed_ids(conn, [event_id])
        visible = await filter_visible(conn, self.engine, requester.user_id, [
            e for e in stored
            if e.room_id == room_id and not e.rejected and e.event_id not in hidden
        ])
        if not visible:
            raise not_found("Event not found")
        return (await self._serialize(conn, visible, requester))[0]

    async def messages(
        self, requester: Requester, room_id: str, *, from_token: str | None,
        to_token: str | None, backwards: bool, limit: int, event_filter: EventFilter,
        as_admin: bool = False,
    ) -> dict[str, Any]:
        """Spec /messages: a page of events, the token to continue from, and the members
        needed to render them when lazy loading. `as_admin`: a server admin's read (the admin
        API's room messages), of the whole room whoever may see what, as Synapse's is."""
        start = parse_position(from_token) if from_token else None
        stop = parse_position(to_token) if to_token else None

        async def run(conn: asyncpg.Connection) -> tuple[dict[str, Any], Page]:
            if as_admin:
                await self.engine.room_version(conn, room_id)  # 404 for unknown rooms
                view = View(None, None)
            else:
                view = await self._view(conn, room_id, requester.user_id)
            ceiling = self.stream.current if view.upto is None else view.upto
            page = await read_page(conn, PageQuery(
                room_id, start, stop, ceiling, limit, event_filter.sql_types(),
                event_filter.sql_senders(),
            ), backwards=backwards)
            # Read once for both the visibility filter and the bundles.
            ignored = frozenset() if as_admin else await ignored_users(conn, requester.user_id)
            visible = (
                await drop_expired(conn, self.engine, page.events) if as_admin
                else await filter_visible(
                    conn, self.engine, requester.user_id, page.events, ignored=ignored
                )
            )
            chunk = [
                e for e in await self._serialize(conn, visible, requester, ignored)
                if event_filter.allows(e)
            ]
            result: dict[str, Any] = {"start": page.start, "chunk": chunk}
            if page.end is not None:
                result["end"] = page.end
            elif page.events and not page.at_bottom:
                # A page that read events may have more beyond them (a `to` reached, the
                # newest event going forwards, which new events may follow): as the reference
                # server does, only an empty page ends the pagination.
                last = page.events[-1]
                result["end"] = encode_position(
                    position_before(last) if backwards else await position_after(conn, last)
                )
            if event_filter.lazy_load_members:
                result["state"] = await self._members_of(conn, room_id, view, chunk, requester)
            return result, page

        result, page = await self.db.run(run)
        for _ in range(BACKFILL_ROUNDS):
            if not page.at_bottom or not await self._backfill(room_id, limit):
                return result
            result, page = await self.db.run(run)
        if page.at_bottom:  # other servers are still giving history: the client asks again
            result["end"] = page.resume()
        return result

    async def _backfill(self, room_id: str, limit: int) -> bool:
        """Whether other servers gave us history from before what this server holds."""
        points = await self.db.run(
            lambda conn: event_graph.get_backward_extremities(conn, room_id, BACKFILL_POINTS)
        )
        return bool(points) and await self.history.backfill(room_id, points, limit) > 0

    async def _members_of(
        self, conn: asyncpg.Connection, room_id: str, view: View, chunk: list[dict[str, Any]],
        requester: Requester,
    ) -> list[dict[str, Any]]:
        senders = sorted({e["sender"] for e in chunk})
        ids = await self._state_ids(conn, room_id, view, ["m.room.member"])
        wanted = [ids[("m.room.member", s)] for s in senders if ("m.room.member", s) in ids]
        return await self._serialize(conn, await load_events(conn, wanted), requester)

    async def context(
        self, requester: Requester, room_id: str, event_id: str, limit: int,
        event_filter: EventFilter,
    ) -> dict[str, Any]:
        """The event, `limit` events around it (split before/after), and the state at it."""
        async def run(conn: asyncpg.Connection) -> dict[str, Any]:
            view = await self._view(conn, room_id, requester.user_id)
            target = await self._visible_event(conn, requester, room_id, event_id)
            stored = (await load_events(conn, [event_id]))[0]
            ceiling = self.stream.current if view.upto is None else view.upto
            before_n, after_n = limit // 2, limit - limit // 2
            query = PageQuery(
                room_id, None, None, ceiling, 1, event_filter.sql_types(),
                event_filter.sql_senders(),
            )
            older = None
            if before_n:
                older = await read_page(
                    conn, replace(query, start=position_before(stored), limit=before_n),
                    backwards=True,
                )
            newer = await read_page(
                conn, replace(query, start=await position_after(conn, stored), limit=after_n),
                backwards=False,
            )
            before = older.events if older is not None else []
            after = newer.events
            uid = requester.user_id
            ignored = await ignored_users(conn, uid)
            # Both sides checked at once (same room, mostly the same state), then split:
            # filter_visible keeps the order, so the visible events before come first.
            visible = await filter_visible(
                conn, self.engine, uid, [*before, *after], ignored=ignored
            )
            before_ids = {e.event_id for e in before}
            split = sum(1 for e in visible if e.event_id in before_ids)
            state_ids = (
                await state_store.get_state(conn, stored.state_group)
                if stored.state_group is not None else {}
            )
            state_events = await load_events(conn, list(state_ids.values()))
            state = await self._serialize(conn, await erased_unless_joined(
                conn, self.engine, uid, state_ids, state_events
            ), requester)
            start = (
                encode_position(position_before(stored)) if older is None
                else older.end or older.resume()
            )
            # A forward page short of its limit read everything up to the ceiling.
            end = newer.end or StreamToken(events=ceiling).encode()
            # Both sides bundled at once: one summary of their children, not two.
            around = await self._serialize(conn, visible, requester, ignored)
            return {
                "event": target,
                "events_before": around[:split],
                "events_after": around[split:],
                "state": state,
                "start": start,
                "end": end,
            }
        return await self.db.run(run)


    async def event_near(
        self, requester: Requester, room_id: str, ts: int, forwards: bool
    ) -> dict[str, Any]:
        """`timestamp_to_event`: of the `NEAR_TS_CANDIDATES` events nearest `ts` in the
        direction asked, the first the user may see (only events this server holds)."""
        # 403 for a room the user may not read, 404 for one that doesn't exist.
        await self.state_event(requester, room_id, *CREATE)

        async def run(conn: asyncpg.Connection) -> dict[str, Any]:
            ids = await events_store.get_events_near_ts(
                conn, room_id, ts, forwards=forwards, limit=NEAR_TS_CANDIDATES
            )
            visible = await filter_visible(
                conn, self.engine, requester.user_id, await load_events(conn, ids)
            )
            if not visible:
                raise not_found(f"No event found {'after' if forwards else 'before'} {ts}")
            event_id = visible[0].event_id
            pdu = (await self.engine.get_pdus(conn, [event_id]))[event_id]
            return {"event_id": event_id, "origin_server_ts": pdu["origin_server_ts"]}
        return await self.db.run(run)


def parse_event_filter(raw: str | None) -> EventFilter:
    """The `filter` query parameter of /messages and /context (a RoomEventFilter as JSON)."""
    if raw is None:
        return EventFilter()
    try:
        value = loads_bounded(raw)
        if not isinstance(value, dict):
            raise FilterError("filter must be a JSON object")
        return EventFilter.parse(value, "filter.")
    except ValueError as e:  # FilterError is a ValueError
        raise MatrixError(400, "M_INVALID_PARAM", f"Invalid filter: {e}") from None
