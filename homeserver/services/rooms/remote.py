"""Events from other servers entering a room's DAG: the room cluster's path for remote PDUs.

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

Events with no place in the timeline that fill gaps or join rooms are `outliers`.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from homeserver import metrics
from homeserver.errors import MatrixError, not_found
from homeserver.protocol import hashing
from homeserver.protocol.event_refs import referenced_event_ids
from homeserver.protocol.room_versions import RoomVersion
from homeserver.protocol.state_keys import StateKey
from homeserver.services.censoring import censor_arriving
from homeserver.services.rooms import checks
from homeserver.services.rooms.cache import RoomCache
from homeserver.services.rooms.checks import MissingEvents
from homeserver.services.rooms.extremities import MAX_EXTREMITIES
from homeserver.services.rooms.state import merged_state, resolve, state_group_for
from homeserver.services.rooms.writes import (
    EventWrites,
    PersistedEvent,
    RoomTxn,
    RoomWrites,
    stored_event,
    unplaced_row,
)
from storage import event_graph
from storage import events as events_store
from storage import rooms as rooms_store
from storage import state as state_store
from storage.events import StoredEvent
from storage.state import StateMap
from storage.streams import Slot


class Outcome(enum.Enum):
    """What became of a received event."""

    ACCEPTED = "accepted"
    SOFT_FAILED = "soft_failed"
    REJECTED = "rejected"
    KNOWN = "known"  # stored before


class SoftFailure(enum.Enum):
    """Why an event failed against the room's current state; the value is its metric label."""

    AUTH = "auth"
    ROOM_FULL = "room_full"


@dataclass(frozen=True, slots=True)
class Received:
    event_id: str
    outcome: Outcome
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class _SoftFail:
    kind: SoftFailure
    detail: str

    @property
    def reason(self) -> str:
        return f"{self.kind.value}: {self.detail}"


@dataclass(frozen=True, slots=True)
class _Merge:
    """How an accepted event moves the room's current state."""

    changed: Mapping[StateKey, str]
    removed: Sequence[StateKey]
    # The current state's group after the event, when resolution made it (it may be the
    # event's own group) and it differs from the event's own or from the state before it:
    # recorded with the event for /sync.
    resolved_group: int | None
    resolved: bool  # the heads' states were resolved again


@dataclass(frozen=True, slots=True)
class _Arrival:
    """What one `_receive` call is given besides the event."""

    prev_states: Mapping[str, StateMap]
    federate: bool
    historical: bool
    changed_members: set[str]  # filled: users whose membership resolution changed
    heads: list[int] = field(default_factory=list)  # filled: the room's head count after each


class RemoteEvents:
    """The remote half of the room cluster; it shares the local half's lock, caches and
    writes (`RoomWrites`)."""

    def __init__(
        self, cache: RoomCache, writes: RoomWrites, *, max_members: int,
        crowded: Callable[[str], None] | None = None,
    ) -> None:
        self.cache = cache
        self.writes = writes
        self.max_members = max_members
        # Told of a room left with more than MAX_EXTREMITIES forward extremities (the
        # `ExtremityMerger`, which merges them).
        self.crowded = crowded

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
        arrival = _Arrival(prev_states or {}, federate, historical, set())

        async def body(
            conn: asyncpg.Connection, slot: Slot
        ) -> tuple[Received, PersistedEvent | None, EventWrites]:
            arrival.changed_members.clear()  # a retried transaction starts over
            arrival.heads.clear()
            slot.restart()
            return await self._receive(conn, slot, 0, room_id, dict(pdu), arrival)

        outcome, persisted, writes = await self.writes.write(room_id, "receive_event", body)
        self._committed(room_id, [(persisted, writes)], arrival)
        return outcome

    async def receive_batch(
        self, room_id: str, pdus: Sequence[Mapping[str, Any]]
    ) -> list[Received | MissingEvents | MatrixError]:
        """Check and persist several remote events of one room, oldest first, in one write:
        the events of an inbound transaction cost one lock wait and one commit, as queued local
        sends do. An event that names what we lack (MissingEvents) or is malformed
        (MatrixError) is left out and its exception returned in its place, for the caller's
        slower path; an error of the database fails the whole batch."""
        arrival = _Arrival({}, False, False, set())

        async def body(conn: asyncpg.Connection, slot: Slot) -> tuple[
            list[Received | MissingEvents | MatrixError],
            list[tuple[PersistedEvent | None, EventWrites]],
        ]:
            arrival.changed_members.clear()
            arrival.heads.clear()
            slot.restart()
            outcomes: list[Received | MissingEvents | MatrixError] = []
            stored: list[tuple[PersistedEvent | None, EventWrites]] = []
            for pdu in pdus:
                try:
                    received, persisted, writes = await self._receive(
                        conn, slot, len(stored), room_id, dict(pdu), arrival
                    )
                except (MissingEvents, MatrixError) as e:
                    outcomes.append(e)  # raised before it wrote anything
                    continue
                outcomes.append(received)
                if persisted is not None:
                    stored.append((persisted, writes))
            return outcomes, stored

        outcomes, stored = await self.writes.write(room_id, "receive_events", body)
        self._committed(room_id, stored, arrival)
        return outcomes

    def _committed(
        self, room_id: str, stored: list[tuple[PersistedEvent | None, EventWrites]],
        arrival: _Arrival,
    ) -> None:
        """After the commit: the observers' post-commit step, the caches, the wake-ups, and
        the merger told of a room with too many heads."""
        # A resolution may have changed any of the room's current state, which no single
        # event says.
        self.cache.current_state.invalidate(room_id)
        persisted = [p for p, _ in stored if p is not None]
        for p, writes in stored:
            if p is not None:
                for observer in self.writes.observers:
                    observer.committed(writes)
        if persisted:
            self.writes.after_persist(*persisted)
        if arrival.changed_members:
            self.cache.memberships_resolved(room_id, arrival.changed_members)
        if arrival.heads and arrival.heads[-1] > MAX_EXTREMITIES and self.crowded is not None:
            self.crowded(room_id)

    async def _receive(
        self, conn: asyncpg.Connection, slot: Slot, index: int, room_id: str,
        pdu: dict[str, Any], arrival: _Arrival,
    ) -> tuple[Received, PersistedEvent | None, EventWrites]:
        """One event inside a write: `index` is the stream slot its position comes from."""
        cache = self.cache
        room_version = await cache.room_version(conn, room_id)
        checks.check_format(pdu, room_version)
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
            if not arrival.historical:
                return Received(event_id, Outcome.KNOWN), None, EventWrites()
        if existing is not None and not await event_graph.get_outlier_ids(conn, [event_id]):
            soft_failed = event_id in await events_store.get_soft_failed_ids(conn, [event_id])
            return _known(existing, soft_failed), None, EventWrites()

        pdu = (await censor_arriving(conn, cache, room_id, {event_id: pdu}))[event_id]
        reason = await checks.auth_events_refusal(
            conn, cache, room_id, room_version, pdu, {}, set()
        )
        state_before, before_group = await self._state_before(
            conn, room_id, room_version, pdu, arrival.prev_states
        )
        keys = checks.state_keys_for(pdu, room_version)
        before_ids = {k: state_before[k] for k in keys if k in state_before}
        before = _by_key(before_ids, await cache.get_pdus(conn, list(before_ids.values())))
        if reason is None:
            reason = checks.not_allowed_by(
                "the state before it", checks.auth_refusal(pdu, before, room_version)
            )
        state_key = pdu.get("state_key")
        key = (pdu["type"], state_key) if isinstance(state_key, str) else None
        replaces_state = before_ids.get(key) if key else None
        if existing is not None:
            # An outlier (an auth event, say) now in the room's history: stored again as
            # such. Only now, past every check that may raise before anything is written.
            await event_graph.delete_outlier(conn, event_id)
        if reason is not None:
            metrics.EVENTS_REFUSED.labels("rejected").inc()
            await events_store.insert_events(
                conn, [unplaced_row(room_id, event_id, pdu, before_group, reason=reason)]
            )
            return Received(event_id, Outcome.REJECTED, reason), None, EventWrites()

        extremities = await events_store.get_forward_extremities(conn, room_id)
        after_group = before_group
        if key is not None:
            after_group = await state_store.insert_state_group(
                conn, room_id, before_group, {key: event_id}
            )
        if arrival.historical:
            # Kept with its state (history visibility, events built on it) but no stream
            # position: /sync never hands it out as news, and it moves no head or state.
            await events_store.insert_events(conn, [unplaced_row(
                room_id, event_id, pdu, after_group, replaces_state=replaces_state,
            )])
            return Received(event_id, Outcome.ACCEPTED), None, EventWrites()
        members = set(await cache.joined_members(conn, room_id))
        soft_fail = None
        if any(cache.is_local(m) for m in members):
            # Without a member here, the current state is stale or empty (a room we are
            # joining, or joining again): nothing to judge by.
            soft_fail = await self._soft_fail(conn, room_id, room_version, pdu, keys)
        if soft_fail is not None:
            metrics.EVENTS_SOFT_FAILED.labels(soft_fail.kind.value).inc()
            await events_store.insert_events(
                conn, [unplaced_row(
                    room_id, event_id, pdu, after_group, soft_failed=True,
                    replaces_state=replaces_state,
                )]
            )
            return Received(event_id, Outcome.SOFT_FAILED, soft_fail.reason), None, EventWrites()

        previous = await event_graph.get_latest_position(conn, room_id)
        txn = RoomTxn(conn, room_id, room_version, EventWrites(), members)
        stored = stored_event(
            room_id, event_id, pdu, after_group, position=slot.nth(index),
            replaces_state=replaces_state,
        )
        persisted = await self.writes.stage(
            txn, pdu, stored, before, previous_position=previous, federate=arrival.federate
        )
        await txn.writes.flush(conn, room_id, None)
        # Resolution reads the event itself from the database: only now is it there.
        merge = await self._merge(txn, pdu, event_id, extremities, after_group)
        await self._advance(txn, persisted, extremities, merge, arrival.changed_members)
        prev_ids = set(referenced_event_ids(pdu["prev_events"]))
        arrival.heads.append(sum(e.event_id not in prev_ids for e in extremities) + 1)
        if merge.resolved_group is not None:
            await events_store.set_current_state_group(conn, event_id, merge.resolved_group)
            persisted = dataclasses.replace(persisted, stored=dataclasses.replace(
                stored, current_state_group=merge.resolved_group
            ))
        return Received(event_id, Outcome.ACCEPTED), persisted, txn.writes

    async def _state_before(
        self, conn: asyncpg.Connection, room_id: str, room_version: RoomVersion,
        pdu: Mapping[str, Any], prev_states: Mapping[str, StateMap],
    ) -> tuple[StateMap, int]:
        """The state before the event and a state group holding it."""
        prev_ids = referenced_event_ids(pdu["prev_events"])
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
            return await merged_state(conn, room_id, room_version, groups)
        sets = [await state_store.get_state(conn, g) for g in dict.fromkeys(groups)] + given
        state = await resolve(conn, room_version, sets)
        base = groups[0] if groups else None
        base_state = sets[0] if groups else {}
        return state, await state_group_for(conn, room_id, base, base_state, state)

    async def _soft_fail(
        self, conn: asyncpg.Connection, room_id: str, room_version: RoomVersion,
        pdu: Mapping[str, Any], keys: Sequence[StateKey],
    ) -> _SoftFail | None:
        """Why the event fails against the room's current state (None: it passes)."""
        current_ids = await state_store.get_current_state_for_keys(conn, room_id, keys)
        current = _by_key(current_ids, await self.cache.get_pdus(conn, list(current_ids.values())))
        reason = checks.not_allowed_by(
            "the current state", checks.auth_refusal(pdu, current, room_version)
        )
        if reason is not None:
            return _SoftFail(SoftFailure.AUTH, reason)
        limit = await self.exceeded_member_limit(conn, room_id, pdu, current)
        if limit is not None:
            return _SoftFail(SoftFailure.ROOM_FULL, f"the room is limited to {limit} members")
        return None

    async def exceeded_member_limit(
        self, conn: asyncpg.Connection, room_id: str, pdu: Mapping[str, Any],
        state: Mapping[StateKey, Mapping[str, Any]],
    ) -> int | None:
        """`checks.exceeded_member_limit` under this server's `rooms.max_members`."""
        return await checks.exceeded_member_limit(conn, room_id, pdu, state, self.max_members)

    async def _merge(
        self, txn: RoomTxn, pdu: Mapping[str, Any], event_id: str,
        extremities: list[events_store.Extremity], group: int,
    ) -> _Merge:
        """How the accepted event, stored, moves the room's current state: to the resolution
        of the new heads' states."""
        conn, room_id = txn.conn, txn.room_id
        prev_ids = set(referenced_event_ids(pdu["prev_events"]))
        old = {e.event_id for e in extremities}
        if old and old == prev_ids:
            # The event extends every head: the state after it is the current state plus it.
            if isinstance(pdu.get("state_key"), str):
                return _Merge({(pdu["type"], pdu["state_key"]): event_id}, [], None, False)
            return _Merge({}, [], None, False)
        if old and all(e.state_group == group for e in extremities):
            # The event and every head share one state group (a fork of messages, as when
            # two servers send at once): the current state, their resolution, is it already.
            return _Merge({}, [], None, False)
        heads = [e for e in extremities if e.event_id not in prev_ids]
        groups = [e.state_group for e in heads if e.state_group is not None]
        state, resolved = await merged_state(conn, room_id, txn.room_version, [group, *groups])
        current = await state_store.get_current_state(conn, room_id)
        changed = {k: v for k, v in state.items() if current.get(k) != v}
        removed = [k for k in current if k not in state]
        # Recorded when the current state after the event is not the state at it, or when
        # resolution moved more of it than the event's own key (which the event shows).
        state_key = pdu.get("state_key")
        own = (pdu["type"], state_key) if isinstance(state_key, str) else None
        moved = removed or any(k != own for k in changed)
        return _Merge(changed, removed, resolved if resolved != group or moved else None, True)

    async def _advance(
        self, txn: RoomTxn, event: PersistedEvent, extremities: list[events_store.Extremity],
        merge: _Merge, changed_members: set[str],
    ) -> None:
        """Make the accepted event a forward extremity and bring the current state to `merge`."""
        pdu = event.pdu
        prev_ids = set(referenced_event_ids(pdu["prev_events"]))
        await events_store.replace_forward_extremities(
            txn.conn, txn.room_id, [e.event_id for e in extremities if e.event_id in prev_ids],
            event.event_id,
        )
        if not merge.resolved:
            # `after_persist` updates the caches for the event's own membership.
            await self._apply_state(txn, merge.changed, [], event.stream_ordering, set())
            return
        if pdu["type"] == "m.room.member":
            # Resolution may keep another event for the event's own key: its target's cached
            # membership cannot be updated from the event alone.
            changed_members.add(pdu["state_key"])
        await self._apply_state(
            txn, merge.changed, merge.removed, event.stream_ordering, changed_members
        )

    async def _apply_state(
        self, txn: RoomTxn, changed: Mapping[StateKey, str], removed: Sequence[StateKey],
        position: int, changed_members: set[str],
    ) -> None:
        conn, room_id = txn.conn, txn.room_id
        for key, event_id in changed.items():
            await state_store.upsert_current_state(conn, room_id, key, event_id)
        await state_store.delete_current_state(conn, room_id, removed)
        member_events = {k[1]: e for k, e in changed.items() if k[0] == "m.room.member"}
        pdus = await self.cache.get_pdus(conn, list(member_events.values()))
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
        return Received(stored.event_id, Outcome.REJECTED, "it was rejected before")
    if soft_failed:
        return Received(stored.event_id, Outcome.SOFT_FAILED, "it was soft-failed before")
    return Received(stored.event_id, Outcome.KNOWN)


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


def _by_key(
    ids: Mapping[StateKey, str], pdus: Mapping[str, dict[str, Any]]
) -> dict[StateKey, dict[str, Any]]:
    return {k: pdus[i] for k, i in ids.items() if i in pdus}
