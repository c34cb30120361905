"""The per-room sections of a /sync response: timeline, state, summary and invite state.

Theory of operation. A room's timeline is the newest `limit` events in (after, upto] of the
stream, where `after` is the since token's position (0 on an initial sync and for a room joined
since `since`) and `upto` is the token being issued (or the user's leave event, for a room they
left). One extra event is fetched to know whether the timeline is `limited`. Events the user
may not see (history visibility) or does not want (the messages of users they ignore) are
then left out. The `state` section depends on the mode:

* full (initial sync, `full_state`, a room joined since `since`): the whole state just before the
  timeline's first event, i.e. the state after the room's previous event (in a room joined
  through another server, where nothing before the join has a stream position, the state the
  join was built on);
* incremental: the state changes between `since` and the timeline's first event, which is empty
  (and costs no query) unless the timeline was cut short or filtered; and, when state
  resolution moved the current state within the window (an event of another server on a fork,
  `StoredEvent.current_state_group`), every entry of the state at the window's end that
  differs from that at `since` and that the timeline does not hold: the entries resolution
  chose may be events no timeline shows (as Synapse's "state at the end of the timeline"
  reading, but with the resolved state rather than the last event's own).

The state "at" a position is the room's current state as it was then: after the last event at
or before it, including what resolution made of that event and the room's other heads.

With `use_state_after` (spec v1.16) the section is `state_after` instead: the state at the
*end* of the timeline (full), or the entries of that state that differ from the state at
`since` (incremental), timeline events included, since the client then takes no state from the
timeline. Both ends are read as state snapshots, so a fork resolved inside the window is shown
as resolved.

Lazy-loading members: the member events of the timeline's senders as of its start (and, on a
full window, the syncing user's), including members whose event lies in a gap, less those
the device already holds (`LazyMembers`) unless the filter asks for redundant members; and,
for a room without a name, the members of the summary's heroes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg

from homeserver.services.aggregations import serialize_with_relations
from homeserver.services.event_views import filter_visible, serialize_events
from homeserver.services.filters import EventFilter, Filter
from homeserver.services.lazy_members import LazyMembers
from homeserver.services.requester import Requester
from homeserver.services.rooms.state import state_before_event
from homeserver.services.rooms.view import RoomView
from homeserver.services.streams import StreamToken
from storage import events as events_store
from storage import state as state_store
from storage.events import StoredEvent

DEFAULT_TIMELINE_LIMIT = 10
MAX_TIMELINE_LIMIT = 100
MAX_HEROES = 5
# The state a client is shown of a room it is invited to (spec "Stripped state").
STRIPPED_STATE_TYPES = (
    "m.room.create", "m.room.join_rules", "m.room.name", "m.room.avatar",
    "m.room.canonical_alias", "m.room.encryption",
)


@dataclass(frozen=True, slots=True)
class RoomWindow:
    """Which slice of one room a response covers, and how much state it owes."""

    room_id: str
    after: int
    upto: int
    full_state: bool
    state_after: bool = False  # answer `state_after` (end of timeline) instead of `state`
    newly_joined: bool = False  # joined since `since`: the client holds none of its history

    @property
    def state_section(self) -> str:
        return "state_after" if self.state_after else "state"


def sync_event(event: dict[str, Any], flt: Filter) -> dict[str, Any]:
    """An event as /sync shows it: a client event without `room_id` (federation events keep
    it), cut to the filter's event_fields."""
    if flt.event_format == "client":
        event.pop("room_id", None)
    return flt.project(event)


def _state_allowed(stored: StoredEvent, state_filter: EventFilter) -> bool:
    if not state_filter.allows_type(stored.type) or not state_filter.allows_sender(stored.sender):
        return False
    return not (state_filter.lazy_load_members and stored.type == "m.room.member")


async def state_at(
    conn: asyncpg.Connection, room_id: str, position: int,
    keys: list[tuple[str, str]] | None = None,
) -> dict[Any, str]:
    """The room's current state as of `position`: after its last event at or before it, as
    resolved with the room's other heads when that event was persisted (empty before
    creation); only `keys` when given."""
    last = await events_store.get_room_events(
        conn, room_id, after=0, upto=position, limit=1, newest_first=True
    )
    if not last:
        return {}
    group = last[0].current_state_group
    if group is None:
        group = last[0].state_group
    if group is None:
        return {}
    if keys is not None:
        return await state_store.get_state_for_keys(conn, group, keys)
    return await state_store.get_state(conn, group)


async def resolved_window(
    conn: asyncpg.Connection, room_id: str, after: int, upto: int,
    events: list[StoredEvent], *, resolved: bool,
) -> tuple[dict[Any, str], dict[Any, str]] | None:
    """The room's current state at `after` and at `upto` when state resolution moved it in
    between in a way its events need not show (it kept another branch's event, or took an
    earlier one back); None when no event of the window resolved anything. `events`: those of
    the window the caller holds; `resolved`: whether the database says one it does not hold
    resolved something (`StateChanges.resolved`), so that a window with no fork costs no
    read here."""
    if not (resolved or any(e.current_state_group is not None for e in events)):
        return None
    return await state_at(conn, room_id, after), await state_at(conn, room_id, upto)


async def room_timeline_and_state(
    conn: asyncpg.Connection, engine: RoomView, requester: Requester, window: RoomWindow,
    flt: Filter, ignored: frozenset[str], lazy: LazyMembers, now: int,
) -> dict[str, Any]:
    """`timeline` and `state` of one room for the window, without the events of the users
    `ignored`, with ages as of ``now``; see the module docstring."""
    timeline_filter = flt.room.timeline
    wanted = timeline_filter.limit
    limit = min(DEFAULT_TIMELINE_LIMIT if wanted is None else wanted, MAX_TIMELINE_LIMIT)
    wanted_types, wanted_senders = timeline_filter.sql_types(), timeline_filter.sql_senders()
    fetched = engine.recent.window(
        window.room_id, after=window.after, upto=window.upto, limit=limit + 1,
        types=wanted_types, senders=wanted_senders,
    )
    if fetched is None:
        fetched = await events_store.get_room_events(
            conn, window.room_id, after=window.after, upto=window.upto, limit=limit + 1,
            newest_first=True, types=wanted_types, senders=wanted_senders,
        )
    limited = len(fetched) > limit
    chronological = list(reversed(fetched[:limit]))
    visible = await filter_visible(
        conn, engine, requester.user_id, chronological, ignored=ignored
    )
    federation = flt.event_format == "federation"
    # Bundled aggregations only for a gappy timeline (spec "Aggregations of child events"), or
    # a room joined since `since` (as Synapse): a client that got every event since `since`
    # has seen the children themselves.
    if limited or window.newly_joined:
        serialized = await serialize_with_relations(
            conn, engine, visible, requester, now=now, federation=federation, ignored=ignored
        )
    else:
        serialized = await serialize_events(
            conn, engine, visible, requester, now=now, federation=federation
        )
    shown = [
        (stored, event) for stored, event in zip(visible, serialized, strict=True)
        if timeline_filter.allows(event, window.room_id)
    ]
    first = chronological[0].stream_ordering if chronological else None
    start = first - 1 if first is not None else window.upto
    in_timeline = {stored.event_id for stored, _ in shown}
    if window.state_after:
        state_ids = await _state_after_ids(conn, window)
    else:
        state_ids = await _state_ids(conn, window, start, limited, timeline_filter, chronological)
        state_ids = [e for e in state_ids if e not in in_timeline]
    state_events = [e for e in await _load(conn, state_ids) if _state_allowed(e, flt.room.state)]
    if flt.room.state.lazy_load_members:
        gappy = limited or _filtered(timeline_filter)
        members = await _lazy_members(
            conn, requester, window, start, shown, flt, lazy, gappy
        )
        state_events = sorted(
            state_events + [e for e in members if e.event_id not in in_timeline],
            key=lambda e: e.stream_ordering or 0,
        )
    state_serialized = await serialize_events(
        conn, engine, state_events, requester, now=now, federation=federation
    )
    timeline: dict[str, Any] = {
        "events": [sync_event(event, flt) for _, event in shown],
        "limited": limited,
        "prev_batch": StreamToken(events=start).encode(),
    }
    return {
        "timeline": timeline,
        window.state_section: {"events": [sync_event(e, flt) for e in state_serialized]},
    }


async def _lazy_members(
    conn: asyncpg.Connection, requester: Requester, window: RoomWindow, start: int,
    shown: list[tuple[StoredEvent, dict[str, Any]]], flt: Filter, lazy: LazyMembers,
    gappy: bool,
) -> list[StoredEvent]:
    """The member events a lazy-loading client needs for this timeline: its senders' (and, on
    a full window, the user's own) membership as of the timeline's start, whether or not it
    changed in a gap, less those the device already holds unless `include_redundant_members`.
    Member events in the timeline count as sent."""
    needed = {stored.sender for stored, _ in shown}
    if window.full_state:
        needed.add(requester.user_id)
    state_filter = flt.room.state
    key = (requester.user_id, requester.device_id, window.room_id)
    if not (window.full_state or gappy or state_filter.include_redundant_members) and (
        lazy.holds(key, needed)
    ):
        # Every sender's member event was sent, and any change since is in this timeline.
        lazy.take(key, _timeline_members(shown), fresh=False, redundant=False)
        return []
    at_start = await state_at(
        conn, window.room_id, start, [("m.room.member", u) for u in sorted(needed)]
    )
    members = {user_id: event_id for (_, user_id), event_id in at_start.items()}
    members.update(_timeline_members(shown))
    wanted = lazy.take(
        key, members, fresh=window.full_state,
        redundant=state_filter.include_redundant_members,
    )
    loaded = await _load(conn, [e for e in at_start.values() if e in wanted])
    return [e for e in loaded if state_filter.allows_type(e.type)
            and state_filter.allows_sender(e.sender)]


def _timeline_members(shown: list[tuple[StoredEvent, dict[str, Any]]]) -> dict[str, str]:
    return {
        stored.state_key: stored.event_id for stored, _ in shown
        if stored.type == "m.room.member" and stored.state_key is not None
    }


async def lazy_hero_members(
    conn: asyncpg.Connection, engine: RoomView, requester: Requester, window: RoomWindow,
    heroes: list[str], present: set[str], flt: Filter, lazy: LazyMembers, now: int,
) -> list[dict[str, Any]]:
    """The member events of the summary's heroes a lazy-loading client lacks (sync.yaml:
    "the membership events for the heroes MUST be included in the `state`, unless they are
    redundant"), leaving out the members the response already carries (`present`)."""
    keys = [("m.room.member", u) for u in heroes if u not in present]
    if not keys:
        return []
    state = await state_store.get_current_state_for_keys(conn, window.room_id, keys)
    members = {key: event_id for (_, key), event_id in state.items()}
    wanted = lazy.take(
        (requester.user_id, requester.device_id, window.room_id), members, fresh=False,
        redundant=flt.room.state.include_redundant_members,
    )
    loaded = await _load(conn, [e for e in members.values() if e in wanted])
    serialized = await serialize_events(
        conn, engine, loaded, requester, now=now, federation=flt.event_format == "federation"
    )
    return [sync_event(e, flt) for e in serialized]


async def _state_after_ids(conn: asyncpg.Connection, window: RoomWindow) -> list[str]:
    """`state_after`: the state at the window's end, less what the client held at `since`."""
    at_end = await state_at(conn, window.room_id, window.upto)
    if window.full_state:
        return list(at_end.values())
    at_since = await state_at(conn, window.room_id, window.after)
    return [e for key, e in at_end.items() if at_since.get(key) != e]


async def _state_ids(
    conn: asyncpg.Connection, window: RoomWindow, start: int, limited: bool,
    timeline_filter: EventFilter, timeline: list[StoredEvent],
) -> list[str]:
    if window.full_state:
        state = await state_at(conn, window.room_id, start)
        if not state:
            state = await _state_before_first(conn, timeline)
        return list(state.values())
    filtered = _filtered(timeline_filter)
    ids: dict[Any, str] = {}
    resolved_unseen = False
    if limited or filtered:
        # Unfiltered, the timeline holds every event after `start`: the database is asked
        # about those before it (filtered, about all of the window).
        upto = window.upto if filtered else start
        changes = await events_store.get_state_changes(conn, window.room_id, window.after, upto)
        ids = {(e.type, e.state_key): e.event_id for e in changes.events}
        resolved_unseen = changes.resolved
    resolved = await resolved_window(
        conn, window.room_id, window.after, window.upto, timeline, resolved=resolved_unseen,
    )
    if resolved is not None:
        # What resolution changed is owed even where no event of the window shows it.
        before, after = resolved
        ids.update((k, e) for k, e in after.items() if before.get(k) != e)
    return list(ids.values())


async def _state_before_first(
    conn: asyncpg.Connection, timeline: list[StoredEvent]
) -> dict[Any, str]:
    """The state before the timeline's first event that has a state of its own. A room joined
    through another server has nothing with state before our join here (the state sent with
    the join is outliers, an invite is kept out of band: none has a place in the stream), so
    its state at the join is the one the join was built on."""
    for stored in timeline:
        if stored.state_group is not None:
            return await state_before_event(conn, stored)
    return {}


def _filtered(timeline_filter: EventFilter) -> bool:
    """Whether the timeline may leave out events of the window (its state changes too)."""
    return (
        timeline_filter.types is not None or timeline_filter.senders is not None
        or bool(timeline_filter.not_types) or bool(timeline_filter.not_senders)
        or timeline_filter.contains_url is not None
    )


async def _load(conn: asyncpg.Connection, event_ids: list[str]) -> list[StoredEvent]:
    if not event_ids:
        return []
    found = await events_store.get_events(conn, event_ids)
    return sorted(
        (found[e] for e in event_ids if e in found), key=lambda e: e.stream_ordering or 0
    )


async def room_summary(
    conn: asyncpg.Connection, engine: RoomView, room_id: str, user_id: str
) -> dict[str, Any]:
    """`summary`: member counts and, for a room with neither a name nor a canonical alias, up
    to five heroes (other joined or invited members, oldest first; failing those, the ones who
    left or were banned), as sync.yaml has it."""
    members = await state_store.get_members(conn, room_id)
    present = [m for m in members if m["membership"] in ("join", "invite")]
    joined = sum(1 for m in present if m["membership"] == "join")
    summary: dict[str, Any] = {
        "m.joined_member_count": joined,
        "m.invited_member_count": len(present) - joined,
    }
    if not await _is_named(conn, engine, room_id):
        others = [m["user_id"] for m in present if m["user_id"] != user_id]
        if not others:
            others = [m["user_id"] for m in members if m["user_id"] != user_id]
        summary["m.heroes"] = others[:MAX_HEROES]
    return summary


async def _is_named(conn: asyncpg.Connection, engine: RoomView, room_id: str) -> bool:
    """Whether the room has a non-empty `m.room.name` or `m.room.canonical_alias`."""
    state = await state_store.get_current_state(
        conn, room_id, ["m.room.name", "m.room.canonical_alias"]
    )
    pdus = await engine.get_pdus(conn, list(state.values()))
    for (event_type, key), event_id in state.items():
        content = pdus[event_id]["content"] if event_id in pdus and key == "" else {}
        field_name = "name" if event_type == "m.room.name" else "alias"
        value = content.get(field_name)
        if isinstance(value, str) and value:
            return True
    return False


async def member_event_at(
    conn: asyncpg.Connection, member_event_id: str, position: int
) -> StoredEvent | None:
    """The user's member event in force at `position`, walking back from a later one."""
    event_id: str | None = member_event_id
    while event_id is not None:
        stored = (await events_store.get_events(conn, [event_id])).get(event_id)
        if stored is None:
            return None
        if (stored.stream_ordering or 0) <= position:
            return stored
        event_id = stored.replaces_state
    return None


def membership_of(stored: StoredEvent) -> str | None:
    membership: str | None = json.loads(stored.json)["content"].get("membership")
    return membership


async def membership_before(
    conn: asyncpg.Connection, member_event_id: str, position: int
) -> str | None:
    """The membership a user had at `position` (None: none yet).

    Tells a room joined since a token (full state owed) from a profile change of a member.
    """
    stored = await member_event_at(conn, member_event_id, position)
    return membership_of(stored) if stored is not None else None


def _stripped(pdu: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": pdu["type"], "state_key": pdu["state_key"], "content": pdu["content"],
        "sender": pdu["sender"],
    }


async def invite_state(
    conn: asyncpg.Connection, engine: RoomView, room_id: str, invite_event_id: str
) -> list[dict[str, Any]]:
    """Stripped state of a room the user is invited to or knocked on, ending with the invite
    or knock itself.

    Uses the invite's `unsigned.invite_room_state` when it carries one (a remote invite);
    otherwise the room's current state as this server knows it.
    """
    invite = (await engine.get_pdus(conn, [invite_event_id]))[invite_event_id]
    carried = invite.get("unsigned", {}).get("invite_room_state")
    if isinstance(carried, list):
        state = carried
    else:
        state = await stripped_state(conn, engine, room_id, invite["sender"])
    # The sender's membership is in the stripped state: for a knock that is the knock itself
    # (a resident's `knock_room_state` holds it too), shown once, as this server holds it.
    own = ("m.room.member", invite.get("state_key"))
    return [*(e for e in state if (e.get("type"), e.get("state_key")) != own), _stripped(invite)]


async def stripped_state(
    conn: asyncpg.Connection, engine: RoomView, room_id: str, member: str
) -> list[dict[str, Any]]:
    """The room's current stripped state, with `member`'s membership event (the inviter's),
    as invites and knocks show it to users outside the room."""
    state = await state_store.get_current_state(conn, room_id, list(STRIPPED_STATE_TYPES))
    ids = [e for (_, key), e in sorted(state.items()) if key == ""]
    membership = await state_store.get_current_state_event_id(
        conn, room_id, ("m.room.member", member)
    )
    if membership is not None:
        ids.append(membership)
    pdus = await engine.get_pdus(conn, ids)
    return [_stripped(pdus[e]) for e in ids if e in pdus]
