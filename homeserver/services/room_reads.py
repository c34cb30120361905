"""Reading a room: state, members, single events, context and /messages pagination.

A user who is joined reads the room as it is now; a user who left (or was kicked or banned)
reads it as it was at their leave; anyone else is refused unless history is world-readable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from homeserver.errors import MatrixError, forbidden, not_found
from homeserver.protocol.canonical_json import loads_bounded
from homeserver.services.event_views import filter_visible, load_events, serialize_events
from homeserver.services.filters import EventFilter, FilterError
from homeserver.services.requester import Requester
from homeserver.services.room_engine import RoomEngine
from homeserver.services.streams import StreamToken
from storage import events as events_store
from storage import state as state_store
from storage.database import Database

StateKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class View:
    """What part of a room a user may read: current state, or the state at their leave."""

    state_group: int | None  # None: the current state
    upto: int | None  # the last stream position they may see; None: no bound


class RoomReads:
    def __init__(self, db: Database, engine: RoomEngine) -> None:
        self.db = db
        self.engine = engine

    async def _view(self, conn: asyncpg.Connection, room_id: str, user_id: str) -> View:
        await self.engine.room_version(conn, room_id)  # 404 for unknown rooms
        row = await state_store.get_membership(conn, room_id, user_id)
        if row is not None and row["membership"] == "join":
            return View(None, None)
        if row is not None and row["membership"] in ("leave", "ban"):
            leave = await events_store.get_events(conn, [row["event_id"]])
            stored = leave.get(row["event_id"])
            if stored is not None:
                return View(stored.state_group, stored.stream_ordering)
        history = await self._state_content(conn, room_id, ("m.room.history_visibility", ""))
        if history is not None and history.get("history_visibility") == "world_readable":
            return View(None, None)
        raise forbidden(f"You are not a member of {room_id}")

    async def _state_ids(
        self, conn: asyncpg.Connection, room_id: str, view: View, types: list[str] | None = None
    ) -> dict[StateKey, str]:
        if view.state_group is None:
            return await state_store.get_current_state(conn, room_id, types)
        return await state_store.get_state(conn, view.state_group, types)

    async def _state_content(
        self, conn: asyncpg.Connection, room_id: str, key: StateKey
    ) -> dict[str, Any] | None:
        event_id = await state_store.get_current_state_event_id(conn, room_id, key)
        if event_id is None:
            return None
        pdu = (await self.engine.get_pdus(conn, [event_id]))[event_id]
        content: dict[str, Any] = pdu["content"]
        return content

    async def state(self, requester: Requester, room_id: str) -> list[dict[str, Any]]:
        async def run(conn: asyncpg.Connection) -> list[dict[str, Any]]:
            view = await self._view(conn, room_id, requester.user_id)
            ids = await self._state_ids(conn, room_id, view)
            return await serialize_events(
                conn, self.engine, await load_events(conn, list(ids.values())), requester
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
            events = await serialize_events(
                conn, self.engine, await load_events(conn, [event_id]), requester
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
            events = await serialize_events(
                conn, self.engine, await load_events(conn, list(ids.values())), requester
            )
            return [
                e for e in events
                if (membership is None or e["content"].get("membership") == membership)
                and (not_membership is None or e["content"].get("membership") != not_membership)
            ]
        return await self.db.run(run)

    async def joined_members(self, requester: Requester, room_id: str) -> dict[str, Any]:
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
            await self._view(conn, room_id, requester.user_id)
            stored = await load_events(conn, [event_id])
            visible = await filter_visible(conn, self.engine, requester.user_id, [
                e for e in stored if e.room_id == room_id and not e.rejected
            ])
            if not visible:
                raise not_found("Event not found")
            return (await serialize_events(conn, self.engine, visible, requester))[0]
        return await self.db.run(run)

    async def messages(
        self, requester: Requester, room_id: str, *, from_token: str | None,
        to_token: str | None, backwards: bool, limit: int, event_filter: EventFilter,
    ) -> dict[str, Any]:
        """Spec /messages: a page of events, the token to continue from, and the members
        needed to render them when lazy loading."""
        start = _parse_token(from_token) if from_token else None
        stop = _parse_token(to_token) if to_token else None

        async def run(conn: asyncpg.Connection) -> dict[str, Any]:
            view = await self._view(conn, room_id, requester.user_id)
            ceiling = self.engine.stream.current if view.upto is None else view.upto
            if backwards:
                upto = min(start if start is not None else ceiling, ceiling)
                after = stop if stop is not None else 0
            else:
                after = start if start is not None else 0
                upto = min(stop if stop is not None else ceiling, ceiling)
            page = await events_store.get_room_events(
                conn, room_id, after=after, upto=upto, limit=limit, newest_first=backwards,
                types=event_filter.sql_types(), senders=event_filter.sql_senders(),
            )
            visible = await filter_visible(conn, self.engine, requester.user_id, page)
            chunk = [
                e for e in await serialize_events(conn, self.engine, visible, requester)
                if event_filter.allows(e)
            ]
            begin = StreamToken(events=upto if backwards else after).encode()
            result: dict[str, Any] = {"start": begin, "chunk": chunk}
            if len(page) == limit:
                last = page[-1].stream_ordering or 0
                result["end"] = StreamToken(events=last - 1 if backwards else last).encode()
            if event_filter.lazy_load_members:
                result["state"] = await self._members_of(conn, room_id, view, chunk, requester)
            return result
        return await self.db.run(run)

    async def _members_of(
        self, conn: asyncpg.Connection, room_id: str, view: View, chunk: list[dict[str, Any]],
        requester: Requester,
    ) -> list[dict[str, Any]]:
        senders = sorted({e["sender"] for e in chunk})
        ids = await self._state_ids(conn, room_id, view, ["m.room.member"])
        wanted = [ids[("m.room.member", s)] for s in senders if ("m.room.member", s) in ids]
        return await serialize_events(conn, self.engine, await load_events(conn, wanted), requester)

    async def context(
        self, requester: Requester, room_id: str, event_id: str, limit: int,
        event_filter: EventFilter,
    ) -> dict[str, Any]:
        """The event, `limit` events around it (split before/after), and the state at it."""
        target = await self.event(requester, room_id, event_id)

        async def run(conn: asyncpg.Connection) -> dict[str, Any]:
            view = await self._view(conn, room_id, requester.user_id)
            stored = (await load_events(conn, [event_id]))[0]
            position = stored.stream_ordering or 0
            ceiling = self.engine.stream.current if view.upto is None else view.upto
            before_n, after_n = limit // 2, limit - limit // 2
            types, senders = event_filter.sql_types(), event_filter.sql_senders()
            before = await events_store.get_room_events(
                conn, room_id, after=0, upto=position - 1, limit=before_n, newest_first=True,
                types=types, senders=senders,
            )
            after = await events_store.get_room_events(
                conn, room_id, after=position, upto=ceiling, limit=after_n, newest_first=False,
                types=types, senders=senders,
            )
            uid = requester.user_id
            before_v = await filter_visible(conn, self.engine, uid, before)
            after_v = await filter_visible(conn, self.engine, uid, after)
            state_ids = (
                await state_store.get_state(conn, stored.state_group)
                if stored.state_group is not None else {}
            )
            state = await serialize_events(
                conn, self.engine, await load_events(conn, list(state_ids.values())), requester
            )
            start = (before[-1].stream_ordering or 1) - 1 if before else position - 1
            end = after[-1].stream_ordering if after else position
            return {
                "event": target,
                "events_before": await serialize_events(conn, self.engine, before_v, requester),
                "events_after": await serialize_events(conn, self.engine, after_v, requester),
                "state": state,
                "start": StreamToken(events=start).encode(),
                "end": StreamToken(events=end or 0).encode(),
            }
        return await self.db.run(run)


def _parse_token(token: str) -> int:
    try:
        return StreamToken.parse(token).events
    except ValueError:
        raise MatrixError(400, "M_INVALID_PARAM", f"Invalid pagination token {token!r}") from None


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
