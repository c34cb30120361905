"""The per-room results of a sliding sync response.

Theory of operation. A room the connection was never sent (or was last shown as an invite, or
left and has rejoined) is sent in full, `initial`: its newest `timeline_limit` visible events
and its `required_state` now (or, for a room the user left or was banned from, as of that
membership event). A room the connection holds is sent only when something changed since the
client's position (`pos` for a room followed live, the position it fell out of the lists at
otherwise): new timeline events, state entries `required_state` names that changed, state a
grown `required_state` newly names, members `$LAZY` newly needs (the senders of the timeline
not yet sent on the connection), or a larger `timeline_limit` (the timeline is then sent in
full again with `expanded_timeline`). Whether a followed room moved at all is answered from
the recent-events cache (one query for all rooms when it cannot tell), so rooms that did not
move cost nothing. Invites and knocks carry their stripped state once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from homeserver.protocol.sliding_sync import MEMBER, RoomConfig, SentRoom, StatePair, StateWanted
from homeserver.services.event_views import filter_visible, serialize_events
from homeserver.services.requester import Requester
from homeserver.services.rooms.view import RoomView
from homeserver.services.sliding_sync.lists import Candidate
from homeserver.services.streams import StreamToken
from homeserver.services.sync_rooms import MAX_HEROES, invite_state
from storage import events as events_store
from storage import state as state_store
from storage.events import StoredEvent

NAME: StatePair = ("m.room.name", "")
AVATAR: StatePair = ("m.room.avatar", "")
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
                out[room_id] = await self._stripped(conn, requester, request, direct, ignored)
                continue
            bound = upto.events if candidate.membership == "join" else candidate.position
            initial = sent is None or sent.membership not in READABLE or (
                sent.membership != "join" and candidate.membership == "join"
            )
            if initial or sent is None:
                windows[room_id] = _Window(0, bound, True, False)
                continue
            after = (since.events if since is not None else 0) if sent.live else sent.upto
            expanded = request.config.timeline_limit > sent.config.timeline_limit
            windows[room_id] = _Window(min(after, bound), bound, False, expanded)
        quiet = await self._unmoved(conn, rooms, windows)
        for room_id, window in windows.items():
            request = rooms[room_id]
            if room_id in quiet and room_id not in read and request.sent is not None:
                out[room_id] = Outcome(None, _followed(request, request.sent.lazy_members))
                continue
            out[room_id] = await self._room(
                conn, requester, request, window, since, direct, ignored, now, room_id in read
            )
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
        self, conn: asyncpg.Connection, requester: Requester, request: RoomRequest,
        direct: frozenset[str], ignored: frozenset[str],
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
            "initial": True,
        }
        for event in events:
            if (event.get("type"), event.get("state_key")) == NAME:
                name = event.get("content", {}).get("name")
                if isinstance(name, str) and name:
                    result["name"] = name
            if (event.get("type"), event.get("state_key")) == AVATAR:
                url = event.get("content", {}).get("url")
                if isinstance(url, str) and url:
                    result["avatar"] = url
        is_direct = own.get("content", {}).get("is_direct") is True
        if candidate.room_id in direct or is_direct:
            result["is_dm"] = True
        key = "invite_state" if candidate.membership == "invite" else "knock_state"
        result[key] = events
        return Outcome(result, now_sent)

    async def _room(
        self, conn: asyncpg.Connection, requester: Requester, request: RoomRequest,
        window: _Window, since: StreamToken | None, direct: frozenset[str],
        ignored: frozenset[str], now: int, read: bool,
    ) -> Outcome:
        candidate, config, sent = request.candidate, request.config, request.sent
        room_id, user_id = candidate.room_id, requester.user_id
        limit = config.timeline_limit
        timeline_after = 0 if window.initial or window.expanded else window.after
        fetched = self.engine.recent.window(
            room_id, after=timeline_after, upto=window.bound, limit=limit + 1
        )
        if fetched is None:
            fetched = await events_store.get_room_events(
                conn, room_id, after=timeline_after, upto=window.bound, limit=limit + 1,
                newest_first=True,
            )
        limited = len(fetched) > limit
        chronological = list(reversed(fetched[:limit]))
        visible = await filter_visible(conn, self.engine, user_id, chronological, ignored=ignored)
        wanted = StateWanted.of(config.required_state, user_id)
        held_lazy = frozenset() if window.initial or sent is None else sent.lazy_members
        in_timeline = {
            e.state_key: e.event_id for e in visible if e.type == MEMBER and e.state_key
        }
        senders = {e.sender for e in visible} if wanted.lazy else set()
        new_lazy = senders - held_lazy - set(in_timeline)
        lazy_now = held_lazy | senders | (set(in_timeline) if wanted.lazy else set())
        if window.initial:
            state = await self._read(conn, candidate, wanted, {(MEMBER, u) for u in new_lazy})
            meta = await self._read(conn, candidate, None, {NAME, AVATAR})
            state_ids = [e for k, e in state.items() if wanted.matches(k[0], k[1], lazy_now)]
            changed_meta = {NAME, AVATAR, (MEMBER, "")}
        else:
            assert sent is not None
            state_ids, changes = await self._delta_state(
                conn, candidate, window, wanted, config.required_state, user_id, sent, limited,
                visible, new_lazy, lazy_now,
            )
            changed_meta = {(t, "" if t == MEMBER else k) for t, k in changes}
            meta = {k: e for k, e in changes.items() if k in (NAME, AVATAR)}
            if not (visible or state_ids or window.expanded or read or (limit == 0 and fetched)):
                return Outcome(None, _followed(request, lazy_now))
        new_sent = SentRoom(True, candidate.membership, 0, config, lazy_now if wanted.lazy
                            else frozenset())
        result = await self._assemble(
            conn, requester, request, window, since, visible, limited, state_ids, meta,
            changed_meta, direct, now,
        )
        return Outcome(result, new_sent, counts=(MEMBER, "") in changed_meta)

    async def _delta_state(
        self, conn: asyncpg.Connection, candidate: Candidate, window: _Window,
        wanted: StateWanted, wanted_pairs: frozenset[StatePair], user_id: str, sent: SentRoom,
        limited: bool, visible: list[StoredEvent], new_lazy: set[str],
        lazy_now: frozenset[str],
    ) -> tuple[list[str], dict[StatePair, str]]:
        """(required_state event IDs to send, every state change of the window by key)."""
        if limited or window.expanded:
            stored = await events_store.get_state_changes(
                conn, candidate.room_id, window.after, window.bound
            )
            changes = {(e.type, e.state_key or ""): e.event_id for e in stored}
            in_timeline = {e.event_id for e in visible}
        else:
            changes = {(e.type, e.state_key): e.event_id for e in visible
                       if e.state_key is not None}
            in_timeline = set(changes.values())
        send = [
            e for (t, k), e in changes.items()
            if e not in in_timeline and wanted.matches(t, k, lazy_now)
        ]
        extra: set[StatePair] = {(MEMBER, u) for u in new_lazy}
        old = StateWanted.of(sent.config.required_state, user_id)
        grown = bool(wanted_pairs - sent.config.required_state)
        if grown or extra:
            state = await self._read(conn, candidate, wanted if grown else None, extra)
            for (t, k), e in state.items():
                fresh = (t, k) in extra or (
                    grown and wanted.matches(t, k) and not old.matches(t, k)
                )
                if fresh and e not in send and e not in in_timeline:
                    send.append(e)
        return send, changes

    async def _read(
        self, conn: asyncpg.Connection, candidate: Candidate, wanted: StateWanted | None,
        keys: set[StatePair],
    ) -> dict[StatePair, str]:
        """The room's state entries `wanted` and `keys` name, now (joined) or as of the
        user's membership event (left, banned)."""
        keys = set(keys)
        whole_types: set[str] = set()
        full = False
        if wanted is not None:
            full = wanted.needs_full_state
            whole_types = set(wanted.whole_types)
            keys |= set(wanted.keys)
        if not (full or whole_types or keys):
            return {}
        room_id = candidate.room_id
        if candidate.membership == "join":
            out: dict[StatePair, str] = {}
            if full:
                return dict(await state_store.get_current_state(conn, room_id))
            if whole_types:
                out.update(await state_store.get_current_state(conn, room_id, list(whole_types)))
            if keys:
                out.update(await state_store.get_current_state_for_keys(conn, room_id, list(keys)))
            return out
        member = (await events_store.get_events(conn, [candidate.event_id])).get(
            candidate.event_id
        )
        if member is None or member.state_group is None:
            return {}
        state = await state_store.get_state(conn, member.state_group)
        return {
            (t, k): e for (t, k), e in state.items()
            if full or t in whole_types or (t, k) in keys
        }

    async def _assemble(
        self, conn: asyncpg.Connection, requester: Requester, request: RoomRequest,
        window: _Window, since: StreamToken | None, visible: list[StoredEvent], limited: bool,
        state_ids: list[str], meta: Mapping[StatePair, str], changed: set[StatePair],
        direct: frozenset[str], now: int,
    ) -> dict[str, Any]:
        """The room's JSON, in the field order the reference server writes it."""
        candidate = request.candidate
        room_id = candidate.room_id
        result: dict[str, Any] = {
            "notification_count": 0, "highlight_count": 0, "bump_stamp": candidate.bump_stamp,
        }
        pdus = await self.engine.get_pdus(conn, list(meta.values()))
        name = _content_str(pdus.get(meta.get(NAME, "")), "name")
        if name:
            result["name"] = name
        avatar = _content_str(pdus.get(meta.get(AVATAR, "")), "url")
        if avatar:
            result["avatar"] = avatar
        if (MEMBER, "") in changed and not name:
            heroes = await self._heroes(conn, room_id, requester.user_id)
            if heroes:
                result["heroes"] = heroes
        if window.initial:
            result["initial"] = True
        if window.expanded:
            # The reference server's name; the MSC's later text drops the prefix.
            result["unstable_expanded_timeline"] = True
            result["expanded_timeline"] = True
        state_events = await _load(conn, state_ids)
        if state_events:
            result["required_state"] = _client(
                await serialize_events(conn, self.engine, state_events, requester, now=now)
            )
        if visible:
            result["timeline"] = _client(
                await serialize_events(conn, self.engine, visible, requester, now=now)
            )
        first = visible[0].stream_ordering if visible else None
        result["limited"] = limited
        result["prev_batch"] = StreamToken(
            events=(first - 1) if first is not None else window.bound
        ).encode()
        live_after = since.events if since is not None else None
        result["num_live"] = 0 if live_after is None else sum(
            1 for e in visible if (e.stream_ordering or 0) > live_after
        )
        if room_id in direct:
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
    sent = request.sent
    assert sent is not None
    return SentRoom(True, request.candidate.membership, 0, request.config, lazy)


def _content_str(pdu: dict[str, Any] | None, field_name: str) -> str | None:
    if pdu is None:
        return None
    value = pdu.get("content", {}).get(field_name)
    return value if isinstance(value, str) and value else None


def _client(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for event in events:
        event.pop("room_id", None)
    return events


async def _load(conn: asyncpg.Connection, event_ids: list[str]) -> list[StoredEvent]:
    if not event_ids:
        return []
    found = await events_store.get_events(conn, event_ids)
    return sorted((found[e] for e in event_ids if e in found),
                  key=lambda e: e.stream_ordering or 0)
