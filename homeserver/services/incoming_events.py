"""Events from other servers entering a room's DAG: the room engine's path for remote PDUs.

Theory of operation. Federation does the steps that need keys or the network (signatures,
content hashes, fetching missing auth events, prev events and the state at a gap) and hands
every PDU here oldest first. This module takes the steps of server-server-api.md "Checks
performed on receipt of a PDU" that need only the DAG:

1. format and size (as for a local event);
2. auth against its own auth events, which must be stored (an auth event of another room fails
   rule 2); failing: *rejected*;
3. auth against the state before it: the state after its prev events, resolved when there are
   several; failing: *rejected*. A prev event of another room refuses the event outright (it
   is not stored): there is no state before it to judge or keep it by;
4. auth against the room's current state and the room's member limit; failing: *soft-failed*.

A rejected event is kept (its ID must not be fetched again) with the state before it as its
state group, but it has no stream position, is no forward extremity and never becomes state. A
soft-failed event is kept with the state after it, so that events built on it by others still
have state, but it has no stream position either: clients never see it. An accepted event
takes the local path's `stage` step (timeline row, search, push, outbox) and then moves the
room's forward extremities and current state: when it extends exactly the room's heads, by its
own key; otherwise the heads' states are resolved again.

*Outliers* (auth chains and state fetched to fill a gap or to join) are stored with no place in
the timeline and no state of their own, each checked against its auth events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from homeserver import metrics
from homeserver.errors import MatrixError, not_found
from homeserver.protocol import auth_rules, hashing
from homeserver.protocol.canonical_json import encode_canonical_json
from homeserver.protocol.errors import AuthError, InvalidEventError
from homeserver.protocol.room_versions import RoomVersion
from homeserver.services import room_state
from homeserver.services.censoring import censor_arriving
from homeserver.services.event_policy import format_error
from homeserver.services.room_engine import (
    MEMBER_LIMIT_TYPE,
    EventWrites,
    PersistedEvent,
    RoomEngine,
)
from storage import event_graph
from storage import events as events_store
from storage import rooms as rooms_store
from storage import state as state_store
from storage.events import NewEvent, StoredEvent
from storage.state import StateKey, StateMap
from storage.streams import Slot

_CREATE = ("m.room.create", "")
_POWER_LEVELS = ("m.room.power_levels", "")


class MissingEvents(Exception):
    """The event names auth or prev events this server does not have: fetch them first."""

    def __init__(self, event_ids: Sequence[str]) -> None:
        self.event_ids = list(event_ids)
        super().__init__(f"missing events: {', '.join(self.event_ids)}")


@dataclass(frozen=True, slots=True)
class Received:
    event_id: str
    outcome: str  # "accepted", "soft_failed", "rejected" or "known" (stored before)
    reason: str | None = None


class IncomingEvents:
    """The remote half of the room engine; it shares the engine's lock, caches and writes."""

    def __init__(self, engine: RoomEngine) -> None:
        self.engine = engine

    # ---- outliers -----------------------------------------------------------------------------

    async def store_outliers(
        self, room_id: str, pdus: Iterable[Mapping[str, Any]]
    ) -> set[str]:
        """Store events fetched for their part in auth chains or state, in auth order, and
        return the IDs among them this server now holds as *accepted* (not rejected; events
        that are malformed, of another room or missing auth events are not stored)."""
        accepted: set[str] = await self.engine.write(
            room_id, "store_outliers",
            lambda conn, slot: self._store_outliers(conn, room_id, list(pdus)),
        )
        return accepted

    async def _store_outliers(
        self, conn: asyncpg.Connection, room_id: str, pdus: list[Mapping[str, Any]]
    ) -> set[str]:
        room_version = await self.engine.room_version(conn, room_id)
        by_id: dict[str, dict[str, Any]] = {}
        for pdu in pdus:
            try:
                auth_rules.check_event_format(pdu, room_version)
            except InvalidEventError:
                continue
            pdu_id = hashing.compute_event_id(pdu, room_version)
            if _belongs_to(pdu, pdu_id, room_id, room_version):
                by_id.setdefault(pdu_id, dict(pdu))
        known = await events_store.get_events(conn, list(by_id))
        todo = await censor_arriving(
            conn, self.engine, room_id, {i: p for i, p in by_id.items() if i not in known}
        )
        new: list[NewEvent] = []
        rejected: set[str] = {i for i, e in known.items() if e.rejected}
        stored: dict[str, dict[str, Any]] = {}  # this batch's, as its later events see them
        for event_id in _auth_order(todo):
            pdu = todo[event_id]
            try:
                reason = await self._auth_events_verdict(
                    conn, room_id, room_version, pdu, stored, rejected
                )
            except MissingEvents:
                continue  # not stored, so it can be fetched again when it is wanted
            if reason is not None:
                rejected.add(event_id)
            stored[event_id] = pdu
            new.append(_outlier_row(room_id, event_id, pdu, reason))
        if new:
            await events_store.insert_events(conn, new)
        return (set(known) | set(stored)) - rejected

    # ---- timeline events ----------------------------------------------------------------------

    async def receive(
        self, room_id: str, pdu: Mapping[str, Any], *,
        prev_states: Mapping[str, StateMap] | None = None, federate: bool = False,
        historical: bool = False,
    ) -> Received:
        """Check and persist one remote event whose signatures federation has verified.

        `prev_states` gives the state after prev events this server does not hold (a gap, or
        the room's history before our join). `federate`: we pass the event on to the room's
        other servers (a join that reached the room through us). `historical`: the event is
        from before our join (backfill), checked like any other but then kept out of the
        stream, the forward extremities and the current state. Raises MissingEvents, or
        MatrixError for an unknown room or a malformed event.
        """
        changed_members: set[str] = set()

        async def body(
            conn: asyncpg.Connection, slot: Slot
        ) -> tuple[Received, PersistedEvent | None, EventWrites]:
            changed_members.clear()  # a retried transaction starts over
            slot.restart()
            return await self._receive(
                conn, slot, 0, room_id, dict(pdu), prev_states or {}, federate,
                changed_members, historical,
            )

        outcome, persisted, writes = await self.engine.write(room_id, "receive_event", body)
        self._committed(room_id, [(persisted, writes)], changed_members)
        return outcome

    async def receive_batch(
        self, room_id: str, pdus: Sequence[Mapping[str, Any]]
    ) -> list[Received | MissingEvents | MatrixError]:
        """Check and persist several remote events of one room, oldest first, in one write:
        the events of an inbound transaction cost one lock wait and one commit, as queued local
        sends do. An event that names what we lack (MissingEvents) or is malformed
        (MatrixError) is left out and its exception returned in its place, for the caller's
        slower path; an error of the database fails the whole batch."""
        changed_members: set[str] = set()

        async def body(conn: asyncpg.Connection, slot: Slot) -> tuple[
            list[Received | MissingEvents | MatrixError],
            list[tuple[PersistedEvent | None, EventWrites]],
        ]:
            changed_members.clear()
            slot.restart()
            outcomes: list[Received | MissingEvents | MatrixError] = []
            stored: list[tuple[PersistedEvent | None, EventWrites]] = []
            for pdu in pdus:
                try:
                    received, persisted, writes = await self._receive(
                        conn, slot, len(stored), room_id, dict(pdu), {}, False,
                        changed_members, False,
                    )
                except (MissingEvents, MatrixError) as e:
                    outcomes.append(e)  # raised before it wrote anything
                    continue
                outcomes.append(received)
                if persisted is not None:
                    stored.append((persisted, writes))
            return outcomes, stored

        outcomes, stored = await self.engine.write(room_id, "receive_events", body)
        self._committed(room_id, stored, changed_members)
        return outcomes

    def _committed(
        self, room_id: str, stored: list[tuple[PersistedEvent | None, EventWrites]],
        changed_members: set[str],
    ) -> None:
        """After the commit: the observers' post-commit step, the caches, the wake-ups."""
        persisted = [p for p, _ in stored if p is not None]
        for p, writes in stored:
            if p is not None:
                for observer in self.engine.observers:
                    observer.committed(writes)
        if persisted:
            self.engine.after_persist(room_id, *persisted)
        if changed_members:
            self.engine.memberships_resolved(room_id, changed_members)

    async def _receive(
        self, conn: asyncpg.Connection, slot: Slot, index: int, room_id: str,
        pdu: dict[str, Any], prev_states: Mapping[str, StateMap], federate: bool,
        changed_members: set[str], historical: bool,
    ) -> tuple[Received, PersistedEvent | None, EventWrites]:
        """One event inside a write: `index` is the stream slot its position comes from."""
        engine = self.engine
        room_version = await engine.room_version(conn, room_id)
        try:
            auth_rules.check_event_format(pdu, room_version)
        except InvalidEventError as e:
            raise format_error(e) from None
        if pdu.get("room_id", room_id) != room_id:
            raise MatrixError(400, "M_BAD_JSON", "The event belongs to another room")
        event_id = hashing.compute_event_id(pdu, room_version)
        if not await rooms_store.lock_room(conn, room_id):
            raise not_found(f"Unknown room {room_id}")
        existing = (await events_store.get_events(conn, [event_id])).get(event_id)
        if not pdu["prev_events"]:
            # Only a room's create event has none, and this room has its own already (as
            # an event or an outlier): nothing without prev events joins its live DAG, and
            # backfill brings only that one (an outlier) into the history.
            if existing is None:
                raise MatrixError(
                    400, "M_BAD_JSON", "Only a room's create event has no prev_events"
                )
            if not historical:
                return Received(event_id, "known"), None, EventWrites()
        if existing is not None and not await event_graph.get_outlier_ids(conn, [event_id]):
            soft_failed = event_id in await events_store.get_soft_failed_ids(conn, [event_id])
            return _known(existing, soft_failed), None, EventWrites()

        pdu = (await censor_arriving(conn, engine, room_id, {event_id: pdu}))[event_id]
        reason = await self._auth_events_verdict(conn, room_id, room_version, pdu, {}, set())
        state_before, before_group = await self._state_before(
            conn, room_id, room_version, pdu, prev_states
        )
        keys = _keys_for(pdu, room_version)
        before_ids = {k: state_before[k] for k in keys if k in state_before}
        before = _by_key(before_ids, await engine.get_pdus(conn, list(before_ids.values())))
        if reason is None:
            reason = _auth_verdict(pdu, before, room_version, "the state before it")
        state_key = pdu.get("state_key")
        key = (pdu["type"], state_key) if isinstance(state_key, str) else None
        if existing is not None:
            # An outlier (an auth event, say) now in the room's history: stored again as
            # such. Only now, past every check that may raise before anything is written.
            await event_graph.delete_outlier(conn, event_id)
        if reason is not None:
            metrics.EVENTS_REFUSED.labels("rejected").inc()
            await events_store.insert_events(
                conn, [_row(room_id, event_id, pdu, before_group, reason=reason)]
            )
            return Received(event_id, "rejected", reason), None, EventWrites()

        extremities = await events_store.get_forward_extremities(conn, room_id)
        after_group = before_group
        if key is not None:
            after_group = await state_store.insert_state_group(
                conn, room_id, before_group, {key: event_id}
            )
        if historical:
            # Kept with its state (history visibility, events built on it) but no stream
            # position: /sync never hands it out as news, and it moves no head or state.
            await events_store.insert_events(conn, [_row(
                room_id, event_id, pdu, after_group,
                replaces_state=before_ids.get(key) if key else None,
            )])
            return Received(event_id, "accepted"), None, EventWrites()
        members = set(await engine.joined_members(conn, room_id))
        soft_reason = None
        if any(engine.is_local(m) for m in members):
            # Without a member here, the current state is stale or empty (a room we are
            # joining, or joining again): nothing to judge by.
            soft_reason = await self._soft_fail_verdict(conn, room_id, room_version, pdu, keys)
        if soft_reason is not None:
            metrics.EVENTS_SOFT_FAILED.labels(soft_reason.split(":")[0]).inc()
            await events_store.insert_events(
                conn, [_row(
                    room_id, event_id, pdu, after_group, soft_failed=True,
                    replaces_state=before_ids.get(key) if key else None,
                )]
            )
            return Received(event_id, "soft_failed", soft_reason), None, EventWrites()

        previous = await event_graph.get_latest_position(conn, room_id)
        writes = EventWrites()
        persisted = await engine.stage(
            conn, room_id, pdu, event_id, after_group, slot.nth(index), before, writes,
            members=members, replaces_state=before_ids.get(key) if key else None,
            previous_position=previous, federate=federate,
        )
        await writes.flush(conn, room_id, None)
        await self._advance(
            conn, room_id, room_version, persisted, extremities, after_group, changed_members
        )
        return Received(event_id, "accepted"), persisted, writes

    async def _auth_events_verdict(
        self, conn: asyncpg.Connection, room_id: str, room_version: RoomVersion,
        pdu: Mapping[str, Any], pending: Mapping[str, Mapping[str, Any]], rejected: set[str],
    ) -> str | None:
        """Why the event fails against its own auth events (None: it passes). Auth events are
        looked up in `pending` (a batch being stored) and then in the database; a missing one
        raises MissingEvents."""
        auth_ids = [str(i) for i in pdu.get("auth_events", [])]
        wanted = list(auth_ids)
        if room_version.room_id_from_create_event and pdu.get("type") != "m.room.create":
            wanted.append(hashing.create_event_id(room_id))  # v12: the create event is implied
        stored = await events_store.get_events(conn, [i for i in wanted if i not in pending])
        missing = [i for i in wanted if i not in pending and i not in stored]
        if missing:
            raise MissingEvents(missing)
        if any(i in rejected or (i in stored and stored[i].rejected) for i in auth_ids):
            return "an auth event was rejected"
        loaded = await self.engine.get_pdus(conn, [i for i in wanted if i not in pending])
        pdus = {**loaded, **{i: dict(p) for i, p in pending.items() if i in wanted}}
        try:
            auth_rules.check_auth_events_selection(pdu, [pdus[i] for i in auth_ids], room_version)
        except AuthError as e:
            return f"auth events: {e}"
        auth_state = {
            (str(p["type"]), str(p["state_key"])): p for p in (pdus[i] for i in wanted)
            if isinstance(p.get("state_key"), str)
        }
        return _auth_verdict(pdu, auth_state, room_version, "its auth events")

    async def _state_before(
        self, conn: asyncpg.Connection, room_id: str, room_version: RoomVersion,
        pdu: Mapping[str, Any], prev_states: Mapping[str, StateMap],
    ) -> tuple[StateMap, int]:
        """The state before the event and a state group holding it."""
        prev_ids = [str(p) for p in pdu["prev_events"]]
        stored = await events_store.get_events(conn, prev_ids)
        elsewhere = [p for p in prev_ids if p in stored and stored[p].room_id != room_id]
        if elsewhere:
            # Its place in another room's DAG would give it that room's state to be judged by.
            raise MatrixError(
                400, "M_BAD_JSON", f"prev_events of another room: {', '.join(elsewhere)}"
            )
        groups = [
            g for p in prev_ids if p not in prev_states
            for g in [stored[p].state_group if p in stored else None] if g is not None
        ]
        missing = [
            p for p in prev_ids
            if p not in prev_states and (p not in stored or stored[p].state_group is None)
        ]
        if missing:
            raise MissingEvents(missing)
        given = [dict(prev_states[p]) for p in prev_ids if p in prev_states]
        if not given:
            return await room_state.merged_state(conn, room_id, room_version, groups)
        sets = [await state_store.get_state(conn, g) for g in dict.fromkeys(groups)] + given
        state = await room_state.resolve(conn, room_version, sets)
        base = groups[0] if groups else None
        base_state = sets[0] if groups else {}
        return state, await room_state.state_group_for(conn, room_id, base, base_state, state)

    async def _soft_fail_verdict(
        self, conn: asyncpg.Connection, room_id: str, room_version: RoomVersion,
        pdu: Mapping[str, Any], keys: Sequence[StateKey],
    ) -> str | None:
        """Why the event fails against the room's current state (None: it passes)."""
        current_ids = await state_store.get_current_state_for_keys(conn, room_id, keys)
        current = _by_key(current_ids, await self.engine.get_pdus(conn, list(current_ids.values())))
        reason = _auth_verdict(pdu, current, room_version, "the current state")
        if reason is not None:
            return f"auth: {reason}"
        limit = await self.engine.exceeded_member_limit(conn, room_id, pdu, current)
        if limit is not None:
            return f"room_full: the room is limited to {limit} members"
        return None

    async def _advance(
        self, conn: asyncpg.Connection, room_id: str, room_version: RoomVersion,
        event: PersistedEvent, extremities: list[events_store.Extremity], group: int | None,
        changed_members: set[str],
    ) -> None:
        """Make the accepted event a forward extremity and bring the current state up to the
        resolution of the new heads' states."""
        pdu, event_id = event.pdu, event.event_id
        prev_ids = set(pdu["prev_events"])
        old = {e.event_id for e in extremities}
        await events_store.replace_forward_extremities(
            conn, room_id, list(prev_ids & old), event_id
        )
        if old and old == prev_ids:
            # The event extends every head: the state after it is the current state plus it.
            if isinstance(pdu.get("state_key"), str):
                # `after_persist` updates the caches for the event's own membership.
                await self._apply_state(
                    conn, room_id, {(pdu["type"], pdu["state_key"]): event_id}, [],
                    event.stream_ordering, set(),
                )
            return
        if old and all(e.state_group == group for e in extremities):
            # The event and every head share one state group (a fork of messages, as when
            # two servers send at once): the current state, their resolution, is it already.
            return
        if pdu["type"] == "m.room.member":
            # Resolution may keep another event for the event's own key: its target's cached
            # membership cannot be updated from the event alone.
            changed_members.add(pdu["state_key"])
        heads = [e for e in extremities if e.event_id not in prev_ids]
        groups = [e.state_group for e in heads if e.state_group is not None]
        assert group is not None
        state, _ = await room_state.merged_state(conn, room_id, room_version, [group, *groups])
        current = await state_store.get_current_state(conn, room_id)
        changed = {k: v for k, v in state.items() if current.get(k) != v}
        removed = [k for k in current if k not in state]
        await self._apply_state(
            conn, room_id, changed, removed, event.stream_ordering, changed_members
        )

    async def _apply_state(
        self, conn: asyncpg.Connection, room_id: str, changed: Mapping[StateKey, str],
        removed: Sequence[StateKey], position: int, changed_members: set[str],
    ) -> None:
        for key, event_id in changed.items():
            await state_store.upsert_current_state(conn, room_id, key, event_id)
        await state_store.delete_current_state(conn, room_id, removed)
        member_events = {k[1]: e for k, e in changed.items() if k[0] == "m.room.member"}
        pdus = await self.engine.get_pdus(conn, list(member_events.values()))
        for user_id, event_id in member_events.items():
            membership = pdus[event_id]["content"].get("membership")
            await state_store.upsert_membership(
                conn, room_id, user_id, str(membership), event_id, position
            )
            changed_members.add(user_id)


def _known(stored: StoredEvent, soft_failed: bool) -> Received:
    """What became of an event received before (a retried send_join must not succeed for a
    join that was rejected or soft-failed the first time)."""
    if stored.rejected:
        return Received(stored.event_id, "rejected", "it was rejected before")
    if soft_failed:
        return Received(stored.event_id, "soft_failed", "it was soft-failed before")
    return Received(stored.event_id, "known")


def state_map(
    events: Iterable[Mapping[str, Any]], room_version: RoomVersion, accepted: set[str]
) -> StateMap:
    """(type, state_key) -> event ID of the state events among `events` that this server
    holds as accepted: a state another server hands us is only taken as far as it checks."""
    out: StateMap = {}
    for event in events:
        state_key = event.get("state_key")
        if not isinstance(state_key, str):
            continue
        event_id = hashing.compute_event_id(event, room_version)
        if event_id in accepted:
            out[(str(event.get("type")), state_key)] = event_id
    return out


def _keys_for(pdu: Mapping[str, Any], room_version: RoomVersion) -> list[StateKey]:
    """The state keys the checks read: the auth types, the create and power levels events (push
    rules read them), the room's member limit and the event's own key (what it replaces)."""
    state_key = pdu.get("state_key")
    own = [(str(pdu["type"]), state_key)] if isinstance(state_key, str) else []
    auth_types = auth_rules.auth_types_for_event(
        str(pdu["type"]), str(pdu["sender"]), state_key if isinstance(state_key, str) else None,
        pdu.get("content", {}), room_version,
    )
    return list(dict.fromkeys(
        [_CREATE, _POWER_LEVELS, (MEMBER_LIMIT_TYPE, ""), *auth_types, *own]
    ))


def _by_key(
    ids: Mapping[StateKey, str], pdus: Mapping[str, dict[str, Any]]
) -> dict[StateKey, dict[str, Any]]:
    return {k: pdus[i] for k, i in ids.items() if i in pdus}


def _auth_verdict(
    pdu: Mapping[str, Any], state: Mapping[StateKey, Mapping[str, Any]],
    room_version: RoomVersion, against: str,
) -> str | None:
    try:
        # Every event that comes here had its required signatures, the restricted join's
        # authorising server's among them, verified on receipt (federation/pdu_checks.py),
        # or is our own join whose authoriser's signature joins.py verified.
        auth_rules.check_auth_rules(
            pdu, state, room_version, is_signed_by=auth_rules.signature_present
        )
    except AuthError as e:
        return f"not allowed by {against}: {e}"
    return None


def _auth_order(pdus: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Event IDs ordered so that each comes after its auth events among `pdus` (a depth-first
    walk with an explicit stack: auth chains may be thousands of events long). The events
    have passed the format check, so `depth` is an integer and `auth_events` a list."""
    order: list[str] = []
    done: set[str] = set()
    for root in sorted(pdus, key=lambda i: (pdus[i]["depth"], i)):
        stack: list[tuple[str, bool]] = [(root, False)]
        on_path: set[str] = set()
        while stack:
            event_id, expanded = stack.pop()
            if expanded:
                on_path.discard(event_id)
                if event_id not in done:
                    done.add(event_id)
                    order.append(event_id)
                continue
            if event_id in done or event_id in on_path or event_id not in pdus:
                continue
            on_path.add(event_id)
            stack.append((event_id, True))
            stack.extend((str(a), False) for a in reversed(pdus[event_id]["auth_events"]))
    return order


def _belongs_to(
    pdu: Mapping[str, Any], event_id: str, room_id: str, room_version: RoomVersion
) -> bool:
    """Whether a fetched event is of this room: its room_id, or for a v12 create event (which
    has none) its ID, of which the room ID is made."""
    if "room_id" in pdu:
        return bool(pdu["room_id"] == room_id)
    return room_version.room_id_from_create_event and event_id == hashing.create_event_id(room_id)


def _row(
    room_id: str, event_id: str, pdu: Mapping[str, Any], state_group: int | None, *,
    reason: str | None = None, soft_failed: bool = False, outlier: bool = False,
    replaces_state: str | None = None,
) -> NewEvent:
    """The events row of an event with no place in the timeline (no stream position)."""
    state_key = pdu.get("state_key")
    stored = StoredEvent(
        event_id=event_id, room_id=room_id, stream_ordering=None, depth=int(pdu["depth"]),
        type=str(pdu["type"]), state_key=state_key if isinstance(state_key, str) else None,
        sender=str(pdu["sender"]), json=encode_canonical_json(pdu).decode(),
        state_group=state_group, rejected=reason is not None, replaces_state=replaces_state,
        redacted_by=None,
    )
    return NewEvent(
        stored, int(pdu["origin_server_ts"]), [str(p) for p in pdu.get("prev_events", [])],
        [str(a) for a in pdu.get("auth_events", [])], rejection_reason=reason,
        soft_failed=soft_failed, outlier=outlier,
    )


def _outlier_row(
    room_id: str, event_id: str, pdu: Mapping[str, Any], reason: str | None
) -> NewEvent:
    return _row(room_id, event_id, pdu, None, reason=reason, outlier=True)
