"""State resolution v2 (rooms v2-v11) and v2.1 (room v12), as one pure function.

Implements rooms/fragments/v2-state-res.md and rooms/v12.md "State resolution". Rooms of
version 1 resolve with v1 (``state_res_v1``); :func:`resolve_state` hands them over.

Theory of operation
-------------------
Input: the state maps to merge (``(type, state_key) -> event_id``), every event the
algorithm may look at (``event_map``: the conflicted events and their auth chains), and the
*auth difference* (the caller has auth-chain indexes; we do not recompute it).

1. Split the keys into the *unconflicted state map* (same event in every state set) and the
   *conflicted state set*. v2.1 adds the *conflicted state subgraph*: every event on an
   ``auth_events`` path between two conflicted events. Together with the auth difference
   this is the *full conflicted set*.
2. Power events (power levels, join rules, kicks and bans) of the full conflicted set, plus
   the parts of their auth chains inside it, are sorted in *reverse topological power
   ordering* (auth ancestors first; among ready events the higher-powered sender, then the
   older timestamp, then the smaller event ID) and replayed through the auth rules, starting
   from the unconflicted map (v2) or from an empty map (v2.1).
3. Everything else in the full conflicted set is sorted by *mainline ordering* against the
   power levels event that step 2 settled on, and replayed on top.
4. The unconflicted map is laid over the result.

Replaying ("iterative auth checks") authorises each event against the state built so far,
falling back to the event's own auth events for keys the state lacks; an event the rules
refuse is skipped.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

from homeserver.protocol.auth_rules import (
    auth_types_for_event,
    check_auth_rules,
    signature_present,
)
from homeserver.protocol.errors import AuthError
from homeserver.protocol.event_refs import referenced_event_ids
from homeserver.protocol.hashing import create_event_id
from homeserver.protocol.power_levels import user_power_level
from homeserver.protocol.room_versions import RoomVersion
from homeserver.protocol.state_keys import CREATE, POWER_LEVELS, StateKey
from homeserver.protocol.state_res_v1 import resolve_state_v1

Event = Mapping[str, Any]
EventMap = Mapping[str, Event]


def _auth_ids(event: Event) -> list[str]:
    return referenced_event_ids(event.get("auth_events"))


def is_power_event(event: Event) -> bool:
    """Power levels, join rules, or a leave/ban of someone other than the sender."""
    if "state_key" not in event:
        return False
    event_type = event.get("type")
    if event_type in ("m.room.power_levels", "m.room.join_rules"):
        return True
    if event_type == "m.room.member":
        membership = (event.get("content") or {}).get("membership")
        return membership in ("leave", "ban") and event.get("sender") != event.get("state_key")
    return False


def _partition(
    state_sets: Sequence[Mapping[StateKey, str]],
) -> tuple[dict[StateKey, str], set[str]]:
    unconflicted: dict[StateKey, str] = {}
    conflicted: set[str] = set()
    all_keys: set[StateKey] = set().union(*(s.keys() for s in state_sets))
    for key in all_keys:
        values = {s.get(key) for s in state_sets}
        if len(values) == 1 and None not in values:
            unconflicted[key] = next(iter(values))  # type: ignore[assignment]
        else:
            conflicted.update(v for v in values if v is not None)
    return unconflicted, conflicted


class _Graph:
    """Auth-DAG queries over ``event_map``; unknown events are treated as graph leaves."""

    def __init__(self, event_map: EventMap) -> None:
        self.events = event_map
        self._chains: dict[str, frozenset[str]] = {}

    def auth_chain(self, event_id: str) -> frozenset[str]:
        """All auth ancestors of ``event_id`` (not including itself), memoised."""
        cached = self._chains.get(event_id)
        if cached is not None:
            return cached
        # Iterative post-order DFS: deep rooms must not hit the recursion limit.
        stack: list[tuple[str, bool]] = [(event_id, False)]
        while stack:
            node, expanded = stack.pop()
            if node in self._chains:
                continue
            parents = [p for p in _auth_ids(self.events.get(node, {}))]
            if not expanded:
                stack.append((node, True))
                stack.extend((p, False) for p in parents if p not in self._chains)
                continue
            chain: set[str] = set()
            for p in parents:
                chain.add(p)
                chain |= self._chains.get(p, frozenset())
            self._chains[node] = frozenset(chain)
        return self._chains[event_id]

    def conflicted_subgraph(self, conflicted: set[str]) -> set[str]:
        """v2.1: events on auth paths between conflicted events (endpoints included)."""
        return {
            e
            for c in conflicted
            for e in self.auth_chain(c)
            if e in conflicted or self.auth_chain(e) & conflicted
        } | {c for c in conflicted if self.auth_chain(c) & conflicted}


class _Resolver:
    def __init__(self, rv: RoomVersion, event_map: EventMap, rejected: AbstractSet[str]) -> None:
        self.rv = rv
        self.events = event_map
        self.rejected = rejected
        self.graph = _Graph(event_map)

    # -- helpers --------------------------------------------------------------------------

    def _auth_event_of_type(self, event: Event, event_type: str) -> tuple[str, Event] | None:
        for aid in _auth_ids(event):
            auth_event = self.events.get(aid)
            if auth_event is not None and auth_event.get("type") == event_type:
                return aid, auth_event
        return None

    def _create_for(self, event: Event) -> Event:
        if event.get("type") == "m.room.create":
            return event
        found = self._auth_event_of_type(event, "m.room.create")
        if found is not None:
            return found[1]
        # v12: the create event is implied by the room ID ("!" + its event ID's hash).
        room_id = event.get("room_id")
        if isinstance(room_id, str):
            return self.events.get(create_event_id(room_id), {})
        return {}

    def _sender_power(self, event_id: str) -> float:
        event = self.events[event_id]
        pl = self._auth_event_of_type(event, "m.room.power_levels")
        pl_content = (pl[1].get("content") or {}) if pl is not None else None
        level = user_power_level(
            str(event.get("sender")), pl_content, self._create_for(event), self.rv
        )
        return float(level)

    def _ts(self, event_id: str) -> int:
        ts = self.events[event_id].get("origin_server_ts")
        return ts if isinstance(ts, int) else 0

    # -- orderings ----------------------------------------------------------------------

    def reverse_topological_power_order(self, event_ids: set[str]) -> list[str]:
        """Kahn's algorithm over the auth DAG, smallest (power desc, ts, id) first."""
        preds = {e: self.graph.auth_chain(e) & event_ids for e in event_ids}
        succs: dict[str, list[str]] = {e: [] for e in event_ids}
        for e, ps in preds.items():
            for p in ps:
                succs[p].append(e)
        waiting = {e: len(ps) for e, ps in preds.items()}
        heap = [(-self._sender_power(e), self._ts(e), e) for e, n in waiting.items() if n == 0]
        heapq.heapify(heap)
        order: list[str] = []
        while heap:
            _, _, e = heapq.heappop(heap)
            order.append(e)
            for s in succs[e]:
                waiting[s] -= 1
                if waiting[s] == 0:
                    heapq.heappush(heap, (-self._sender_power(s), self._ts(s), s))
        return order

    def _pl_parent(self, event_id: str) -> str | None:
        found = self._auth_event_of_type(self.events.get(event_id, {}), "m.room.power_levels")
        return found[0] if found is not None else None

    def mainline_order(self, event_ids: Iterable[str], power_event: str | None) -> list[str]:
        mainline: dict[str, int] = {}
        current = power_event
        while current is not None and current not in mainline:
            mainline[current] = len(mainline)
            current = self._pl_parent(current)

        def position(event_id: str) -> float:
            current = self._pl_parent(event_id)
            seen: set[str] = set()
            while current is not None and current not in seen:
                if current in mainline:
                    return mainline[current]
                seen.add(current)
                current = self._pl_parent(current)
            return math.inf

        # A *greater* mainline position sorts first (based on an earlier power event).
        return sorted(event_ids, key=lambda e: (-position(e), self._ts(e), e))

    # -- iterative auth checks ----------------------------------------------------------

    def iterative_auth_checks(
        self, state: dict[StateKey, str], event_ids: Sequence[str]
    ) -> dict[StateKey, str]:
        for event_id in event_ids:
            event = self.events[event_id]
            state_key = event.get("state_key")
            if not isinstance(state_key, str):
                continue
            auth_state: dict[StateKey, Event] = {}
            for aid in _auth_ids(event):
                auth_event = self.events.get(aid)
                # "...from the event's auth_events is used if the auth event is not rejected"
                if aid in self.rejected:
                    continue
                if auth_event is not None and isinstance(auth_event.get("state_key"), str):
                    auth_state[(str(auth_event.get("type")), auth_event["state_key"])] = auth_event
            keys = auth_types_for_event(
                str(event.get("type")), str(event.get("sender")), state_key,
                event.get("content") or {}, self.rv,
            )
            if not self.rv.create_event_in_auth_events:
                keys.append(CREATE)
            for key in keys:
                if key in state and state[key] in self.events:
                    auth_state[key] = self.events[state[key]]
            if CREATE not in auth_state:
                create = self._create_for(event)
                if create:
                    auth_state[CREATE] = create
            try:
                # Events already accepted: their signatures were verified on receipt.
                check_auth_rules(event, auth_state, self.rv, is_signed_by=signature_present)
            except AuthError:
                continue
            state[(str(event.get("type")), state_key)] = event_id
        return state


def resolve_state(
    room_version: RoomVersion,
    state_sets: Sequence[Mapping[StateKey, str]],
    event_map: Mapping[str, Mapping[str, Any]],
    auth_chain_difference: set[str],
    *,
    rejected_events: AbstractSet[str] = frozenset(),
) -> dict[StateKey, str]:
    """Resolve ``state_sets`` into one state map (state resolution v1, v2 or v2.1).

    For v1, ``event_map`` needs only what ``state_res_v1.resolve_state_v1`` reads, and the
    auth difference and rejections are unused (v1 never falls back to an event's own auth
    events). For v2 and v2.1, ``event_map`` must hold every event of the state sets'
    conflicted entries, of ``auth_chain_difference``, and their auth chains (a missing
    conflicted or auth-difference event raises ``ValueError``; missing deeper ancestors are
    treated as absent).
    ``rejected_events`` names events rejected on their auth chain: they are never used as
    fallback auth events during the iterative auth checks.
    """
    if room_version.state_res == "v1":
        return resolve_state_v1(room_version, state_sets, event_map)
    if not state_sets:
        return {}
    unconflicted, conflicted = _partition(state_sets)
    if not conflicted:
        return unconflicted

    resolver = _Resolver(room_version, event_map, rejected_events)
    full = conflicted | auth_chain_difference
    if room_version.state_res == "v2.1":
        full |= resolver.graph.conflicted_subgraph(conflicted)
    missing = sorted(e for e in full if e not in event_map)
    if missing:
        raise ValueError(f"state resolution needs events that were not loaded: {missing}")

    power = {e for e in full if is_power_event(event_map[e])}
    for p in list(power):
        power |= resolver.graph.auth_chain(p) & full
    power_order = resolver.reverse_topological_power_order(power)

    start = {} if room_version.state_res == "v2.1" else dict(unconflicted)
    partial = resolver.iterative_auth_checks(start, power_order)

    others = full - power
    others_order = resolver.mainline_order(others, partial.get(POWER_LEVELS))
    resolved = resolver.iterative_auth_checks(partial, others_order)

    resolved.update(unconflicted)
    return resolved
