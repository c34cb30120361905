"""The per-room results of a sliding sync response.

Theory of operation. A room the connection was never sent (or was last shown as an invite, or
left and has rejoined) is sent in full, `initial`: its newest `timeline_limit` visible events
and its `required_state` now (or, for a room the user left or was banned from, as of that
membership event). A room the connection holds is sent only when something changed since the
client's position (`pos` for a room followed live, the position it fell out of the lists at
otherwise): new timeline events, state entries `required_state` names that changed, state a
grown `required_state` newly names, members `$LAZY` newly needs (the senders of the timeline
not yet sent on the connection), a larger `timeline_limit` (the timeline is then sent in full
again with `expanded_timeline`), or unread counts the user's own receipt moved. Invites and
knocks carry their stripped state once per membership.

Cost. Whether a followed room moved at all is answered from the recent-events cache (one query
for all rooms when it cannot tell), so rooms that did not move cost nothing. The rooms that are
sent are computed together, phase by phase: their timelines (from the cache, else one query
for all the rooms it cannot answer for), one visibility check, one read of the current state
of every joined room, one load of the state events, one serialization; a first response of
twenty rooms costs a handful of queries, not a few per room.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from homeserver.protocol.sliding_sync import MEMBER, RoomConfig, SentRoom, StatePair, StateWanted
from homeserver.services.event_views import filter_visible, serialize_events
from homeserver.services.requester import Requester
from homeserver.services.rooms.current_state import StateQuery
from homeserver.services.rooms.view import RoomView
from homeserver.services.sliding_sync.lists import Candidate
from homeserver.services.streams import StreamToken
from homeserver.services.sync_rooms import MAX_HEROES, invite_state, resolved_window
from storage import events as events_store
from storage import state as state_store
from storage.events import StoredEvent

NAME: StatePair = ("m.room.name", "")
AVATAR: StatePair = ("m.room.avatar", "")
META = frozenset({NAME, AVATAR})
READABLE = ("join", "leave", "ban")


@dataclass(frozen=True, slots=True)
class RoomRequest:
    """One room this response covers: the user's membership, what the lists and
    subscriptions ask of it, and what the connection holds of it."""

    candidate: Candidate
    config: RoomConfig
    sent: SentRoom | None


@dataclass(frozen=True, slots=True)
class Outcome:
    result: dict[str, Any] | None  # None: nothing to send
    sent: SentRoom
    counts: bool = False  # the result owes joined_count and invited_count


@dataclass(frozen=True, slots=True)
class _Window:
    after: int  # the client holds the room up to here (0: nothing)
    bound: int  # the room as of here: the response's token, or the user's last membership
    initial: bool
    expanded: bool


@dataclass(slots=True)
class _Work:
    """One room being computed, filled in phase by phase."""

    request: RoomRequest
    window: _Window
    read: bool  # the user's receipt moved its unread counts
    wanted: StateWanted
    limited: bool = False
    fetched: list[StoredEvent] = field(default_factory=list)  # the window's, visible or not
    visible: list[StoredEvent] = field(default_factory=list)
    lazy_now: frozenset[str] = frozenset()
    new_lazy: set[str] = field(default_factory=set)
    changes: dict[StatePair, str] = field(default_factory=dict)  # state changes (deltas)
    state_ids: list[str] = field(default_factory=list)
    meta: dict[StatePair, str] = field(default_factory=dict)

    @property
    def room_id(self) -> str:
        return self.request.candidate.room_id

    @property
    def members_changed(self) -> bool:
        return self.window.initial or any(t == MEMBER for t, _ in self.changes)


class RoomResults:
    def __init__(self, engine: RoomView) -> None:
        self.engine = engine

    async def compute(
        self, conn: asyncpg.Connection, requester: Requester,
        rooms: Mapping[str, RoomRequest], since: StreamToken | None, upto: StreamToken,
        direct: frozenset[str], ignored: frozenset[str], now: int,
        read: frozenset[str] = frozenset(),
    ) -> dict[str, Outcome]:
        """room -> what to send of it and what the connection then holds. `read`: rooms
        whose unread counts the user's own receipt moved (sent for their new counts)."""
        out: dict[str, Outcome] = {}
        windows: dict[str, _Window] = {}
        for room_id, request in rooms.items():
            candidate, sent = request.candidate, request.sent
            if candidate.membership not in READABLE:
                out[room_id] = await self._stripped(conn, request, direct, ignored)
                continue
            bound = upto.events if candidate.membership == "join" else candidate.position
            if sent is None or sent.membership not in READABLE or (
                sent.membership != "join" and candidate.membership == "join"
            ):
                windows[room_id] = _Window(0, bound, True, False)
                continue
            after = (since.events if since is not None else 0) if sent.live else sent.upto
            expanded = request.config.timeline_limit > sent.config.timeline_limit
            windows[room_id] = _Window(min(after, bound), bound, False, expanded)
        quiet = await self._unmoved(conn, rooms, windows)
        work: list[_Work] = []
        resolved: dict[frozenset[StatePair], StateWanted] = {}  # the lists share configs
        for room_id, window in windows.items():
            request = rooms[room_id]
            if room_id in quiet and room_id not in read and request.sent is not None:
                out[room_id] = Outcome(None, _followed(request, request.sent.lazy_members))
            else:
                pairs = request.config.required_state
                wanted = resolved.get(pairs)
                if wanted is None:
                    wanted = resolved[pairs] = StateWanted.of(pairs, requester.user_id)
                work.append(_Work(request, window, room_id in read, wanted))
        if work:
            out.update(await self._rooms(conn, requester, work, since, direct, ignored, now))
        return out

    async def _unmoved(
        self, conn: asyncpg.Connection, rooms: Mapping[str, RoomRequest],
        windows: Mapping[str, _Window],
    ) -> set[str]:
        """Rooms held by the connection with nothing new in their window and nothing newly
        asked of them: nothing to send, and no query to find that out beyond one per group
        of rooms the recent-events cache cannot answer for."""
        by_window: defaultdict[tuple[int, int], list[str]] = defaultdict(list)
        for room_id, window in windows.items():
            sent = rooms[room_id].sent
            if window.initial or window.expanded or sent is None or (
                rooms[room_id].config.required_state - sent.config.required_state
            ):
                continue
            by_window[(window.after, window.bound)].append(room_id)
        quiet: set[str] = set()
        for (after, bound), room_ids in by_window.items():
            if after >= bound:
                quiet.update(room_ids)
                continue
            moved = self.engine.recent.rooms_changed(room_ids, after, bound)
            if moved is None:
                moved = await events_store.get_rooms_changed(conn, room_ids, after, bound)
            quiet.update(r for r in room_ids if r not in moved)
        return quiet

    async def _stripped(
        self, conn: asyncpg.Connection, request: RoomRequest, direct: frozenset[str],
        ignored: frozenset[str],
    ) -> Outcome:
        """An invite or knock: its stripped state, once per membership."""
        candidate, sent = request.candidate, request.sent
        now_sent = SentRoom(True, candidate.membership, 0, request.config)
        if sent is not None and sent.membership == candidate.membership:
            return Outcome(None, now_sent)
        events = await invite_state(conn, self.engine, candidate.room_id, candidate.event_id)
        own = events[-1] if events else {}
        if candidate.membership == "invite" and own.get("sender") in ignored:
            return Outcome(None, now_sent)  # spec "Ignoring Users": their invites are not sent
        result: dict[str, Any] = {
            "notification_count": 0, "highlight_count": 0, "bump_stamp": candidate.bump_stamp,
        }
        for event in events:
            pair = (event.get("type"), event.get("state_key"))
            content = event.get("content", {})
            if pair == NAME and _nonempty(content.get("name")):
                result["name"] = content["name"]
            if pair == AVATAR and _nonempty(content.get("url")):
                result["avatar"] = content["url"]
        result["initial"] = True
        if candidate.room_id in direct or own.get("content", {}).get("is_direct") is True:
            result["is_dm"] = True
        # Synapse serves a knock's stripped state as `invite_state` too, and that is what
        # matrix-rust-sdk reads (telling the two apart by the user's own member event);
        # MSC3575 names it `knock_state`: a knock carries both.
        result["invite_state"] = events
        if candidate.membership == "knock":
            result["knock_state"] = events
        return Outcome(result, now_sent)

    async def _rooms(
        self, conn: asyncpg.Connection, requester: Requester, work: list[_Work],
        since: StreamToken | None, direct: frozenset[str], ignored: frozenset[str], now: int,
    ) -> dict[str, Outcome]:
        await self._timelines(conn, requester.user_id, work, ignored)
        loaded = await self._state(conn, requester.user_id, work)
        out: dict[str, Outcome] = {}
        sending: list[_Work] = []
        for w in work:
            request = w.request
            lazy = w.lazy_now if w.wanted.lazy else frozenset()
            if not (w.window.initial or w.visible or w.state_ids or w.window.expanded
                    or w.read or (request.config.timeline_limit == 0 and w.fetched)):
                out[w.room_id] = Outcome(None, _followed(request, lazy))
            else:
                sending.append(w)
        if not sending:
            return out
        for w in sending:
            loaded.update((e.event_id, e) for e in w.visible)
        missing = [e for w in sending for e in w.state_ids if e not in loaded]
        loaded.update(await events_store.get_events(conn, missing) if missing else {})
        state_events = {e for w in sending for e in w.state_ids if e in loaded}
        pdus = await self.engine.get_pdus(conn, [e for w in sending for e in w.meta.values()])
        to_serialize = [e for w in sending for e in w.visible] + sorted(
            (loaded[e] for e in state_events), key=lambda e: e.stream_ordering or 0
        )
        serialized = {
            event["event_id"]: event for event in await serialize_events(
                conn, self.engine, to_serialize, requester, now=now
            )
        }
        for event in serialized.values():
            event.pop("room_id", None)
        for w in sending:
            result = await self._assemble(conn, requester, w, since, direct, serialized, pdus)
            lazy = w.lazy_now if w.wanted.lazy else frozenset()
            sent = SentRoom(True, w.request.candidate.membership, 0, w.request.config, lazy)
            out[w.room_id] = Outcome(result, sent, counts=w.members_changed)
        return out

    async def _timelines(
        self, conn: asyncpg.Connection, user_id: str, work: list[_Work],
        ignored: frozenset[str],
    ) -> None:
        """Each room's newest `timeline_limit` events of its window (from the cache when it
        can answer), then the visible ones among all of them, checked together."""
        chronological: list[StoredEvent] = []
        windows: dict[str, tuple[str, int, int, int]] = {}
        held: dict[str, list[StoredEvent]] = {}
        for w in work:
            after = 0 if w.window.initial or w.window.expanded else w.window.after
            limit = w.request.config.timeline_limit + 1
            cached = self.engine.recent.window(
                w.room_id, after=after, upto=w.window.bound, limit=limit
            )
            if cached is None:
                windows[w.room_id] = (w.room_id, after, w.window.bound, limit)
            else:
                held[w.room_id] = cached
        if windows:
            held.update(await events_store.get_rooms_newest_events(conn, list(windows.values())))
        for w in work:
            limit = w.request.config.timeline_limit
            fetched = held.get(w.room_id, [])
            w.limited = len(fetched) > limit
            w.fetched = fetched
            chronological.extend(reversed(fetched[:limit]))
        visible = await filter_visible(conn, self.engine, user_id, chronological,
                                       ignored=ignored)
        by_room: defaultdict[str, list[StoredEvent]] = defaultdict(list)
        for event in visible:
            by_room[event.room_id].append(event)
        for w in work:
            w.visible = by_room.get(w.room_id, [])

    async def _state(
        self, conn: asyncpg.Connection, user_id: str, work: list[_Work]
    ) -> dict[str, StoredEvent]:
        """Each room's `required_state` to send (and its name and avatar when it owes them),
        with one read of the current state of all the joined rooms; returns the state events
        read on the way, by ID."""
        reads: dict[str, tuple[StateWanted | None, set[StatePair]]] = {}
        loaded: dict[str, StoredEvent] = {}
        for w in work:
            sent = w.request.sent
            held = frozenset() if w.window.initial or sent is None else sent.lazy_members
            senders = {e.sender for e in w.visible} if w.wanted.lazy else set()
            w.new_lazy = senders - held
            w.lazy_now = held | senders
            lazy_keys = {(MEMBER, u) for u in w.new_lazy}
            if w.window.initial:
                reads[w.room_id] = (w.wanted, lazy_keys | META)
                continue
            assert sent is not None
            resolved_unseen = False
            if w.limited or w.window.expanded:
                changed = await events_store.get_state_changes(
                    conn, w.room_id, w.window.after, w.window.bound
                )
                w.changes = {(e.type, e.state_key or ""): e.event_id for e in changed.events}
                loaded.update((e.event_id, e) for e in changed.events)
                resolved_unseen = changed.resolved
            else:
                w.changes = {(e.type, e.state_key): e.event_id for e in w.visible
                             if e.state_key is not None}
            resolved = await resolved_window(
                conn, w.room_id, w.window.after, w.window.bound, w.fetched,
                resolved=resolved_unseen,
            )
            if resolved is not None:
                # Resolution decided the state now: each key changed, or shown changed by
                # an event of the window, is sent as it stands (it may be an event no
                # timeline holds, and a shown event may have lost).
                before, now = resolved
                keys = set(w.changes) | {k for k, e in now.items() if before.get(k) != e}
                w.changes = {k: now[k] for k in keys if k in now}
            w.meta = {k: e for k, e in w.changes.items() if k in META}
            grown = bool(w.request.config.required_state - sent.config.required_state)
            if grown or lazy_keys:
                reads[w.room_id] = (w.wanted if grown else None, lazy_keys)
        found = await self._read(
            conn, {w.room_id: w.request.candidate for w in work}, reads, loaded
        )
        for w in work:
            state = found.get(w.room_id, {})
            if w.window.initial:
                w.state_ids = [e for (t, k), e in state.items()
                               if w.wanted.matches(t, k, w.lazy_now)]
                w.meta = {k: e for k, e in state.items() if k in META}
                continue
            sent = w.request.sent
            assert sent is not None
            # State changes are sent in required_state even when the timeline holds them
            # too, as the reference server does: clients take room state from there.
            send = [e for (t, k), e in w.changes.items() if w.wanted.matches(t, k, w.lazy_now)]
            old = StateWanted.of(sent.config.required_state, user_id)
            lazy_keys = {(MEMBER, u) for u in w.new_lazy}
            for (t, k), e in state.items():
                fresh = (t, k) in lazy_keys or (
                    w.wanted.matches(t, k) and not old.matches(t, k)
                )
                if fresh and e not in send:
                    send.append(e)
            w.state_ids = send
        return loaded

    async def _read(
        self, conn: asyncpg.Connection, candidates: Mapping[str, Candidate],
        reads: Mapping[str, tuple[StateWanted | None, set[StatePair]]],
        loaded: dict[str, StoredEvent],
    ) -> dict[str, dict[StatePair, str]]:
        """The state entries each room's `StateWanted` and keys name: now for joined rooms
        (from the current-state cache, else one query for all; a wildcard type reads the whole
        state), whose events go to `loaded`; as of the user's membership event for the
        others."""
        queries: dict[str, StateQuery] = {}
        whole_rooms: list[str] = []
        out: dict[str, dict[StatePair, str]] = {}
        for room_id, (wanted, extra) in reads.items():
            candidate = candidates[room_id]
            if candidate.membership != "join":
                out[room_id] = await self._read_at_membership(conn, candidate, wanted, extra)
            elif wanted is not None and wanted.needs_full_state:
                whole_rooms.append(room_id)
            elif wanted is None:
                queries[room_id] = StateQuery(frozenset(extra))
            else:
                queries[room_id] = StateQuery(wanted.keys | extra, wanted.whole_types)
        found = await self.engine.current_state.get(conn, queries) if queries else {}
        if whole_rooms:
            for event in await events_store.get_current_state_of_rooms(
                conn, [], [], whole_rooms
            ):
                found.setdefault(event.room_id, []).append(event)
        for events in found.values():
            for event in events:
                loaded[event.event_id] = event
                out.setdefault(event.room_id, {})[(event.type, event.state_key or "")] = (
                    event.event_id
                )
        return out

    async def _read_at_membership(
        self, conn: asyncpg.Connection, candidate: Candidate, wanted: StateWanted | None,
        keys: set[StatePair],
    ) -> dict[StatePair, str]:
        member = (await events_store.get_events(conn, [candidate.event_id])).get(
            candidate.event_id
        )
        if member is None or member.state_group is None or (
            await events_store.get_last_departure(conn, candidate.event_id) is None
        ):
            return {}  # never joined (an invite refused, a ban before any join): no state
        state = await state_store.get_state(conn, member.state_group)
        full = wanted is not None and wanted.needs_full_state
        return {
            (t, k): e for (t, k), e in state.items()
            if full or (t, k) in keys or (wanted is not None and (
                t in wanted.whole_types or (t, k) in wanted.keys
            ))
        }

    async def _assemble(
        self, conn: asyncpg.Connection, requester: Requester, w: _Work,
        since: StreamToken | None, direct: frozenset[str],
        serialized: Mapping[str, dict[str, Any]], pdus: Mapping[str, dict[str, Any]],
    ) -> dict[str, Any]:
        """The room's JSON, in the field order the reference server writes it."""
        candidate = w.request.candidate
        result: dict[str, Any] = {
            "notification_count": 0, "highlight_count": 0, "bump_stamp": candidate.bump_stamp,
        }
        name = _content_str(pdus.get(w.meta.get(NAME, "")), "name")
        if name:
            result["name"] = name
        avatar = _content_str(pdus.get(w.meta.get(AVATAR, "")), "url")
        if avatar:
            result["avatar"] = avatar
        if w.members_changed and not name:
            heroes = await self._heroes(conn, candidate.room_id, requester.user_id)
            if heroes:
                result["heroes"] = heroes
        if w.window.initial:
            result["initial"] = True
        if w.window.expanded:
            # The reference server's name; the MSC's later text drops the prefix.
            result["unstable_expanded_timeline"] = True
            result["expanded_timeline"] = True
        state = [serialized[e] for e in w.state_ids if e in serialized]
        if state:
            result["required_state"] = state
        timeline = [serialized[e.event_id] for e in w.visible if e.event_id in serialized]
        if timeline:
            result["timeline"] = timeline
        first = w.visible[0].stream_ordering if w.visible else None
        result["limited"] = w.limited
        result["prev_batch"] = StreamToken(
            events=(first - 1) if first is not None else w.window.bound
        ).encode()
        result["num_live"] = 0 if since is None else sum(
            1 for e in w.visible if (e.stream_ordering or 0) > since.events
        )
        if candidate.room_id in direct:
            result["is_dm"] = True
        return result

    async def _heroes(
        self, conn: asyncpg.Connection, room_id: str, user_id: str
    ) -> list[dict[str, Any]]:
        """Up to five other members (joined or invited, oldest first; failing those, the
        ones who left), for a client to name a room without a name."""
        members = [m for m in await state_store.get_members(conn, room_id)
                   if m["user_id"] != user_id]
        present = [m for m in members if m["membership"] in ("join", "invite")]
        chosen = (present or members)[:MAX_HEROES]
        pdus = await self.engine.get_pdus(conn, [m["event_id"] for m in chosen])
        heroes = []
        for m in chosen:
            hero: dict[str, Any] = {"user_id": m["user_id"]}
            pdu = pdus.get(m["event_id"])
            displayname = _content_str(pdu, "displayname")
            if displayname:
                hero["displayname"] = displayname
            avatar_url = _content_str(pdu, "avatar_url")
            if avatar_url:
                hero["avatar_url"] = avatar_url
            heroes.append(hero)
        return heroes


def _followed(request: RoomRequest, lazy: frozenset[str]) -> SentRoom:
    """A room held live with nothing sent this time: it keeps what it was sent, under the
    configuration now asked (a narrowed one included, so that widening it again sends what
    the narrowing skipped)."""
    return SentRoom(True, request.candidate.membership, 0, request.config, lazy)


def _nonempty(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _content_str(pdu: dict[str, Any] | None, field_name: str) -> str | None:
    if pdu is None:
        return None
    value = pdu.get("content", {}).get(field_name)
    return value if _nonempty(value) else None
