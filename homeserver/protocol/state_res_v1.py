"""State resolution v1 (room version 1), as one pure function.

Implements rooms/v1.md "State resolution". The spec leaves a few things open; where it does,
we do what Synapse does (``synapse/state/v1.py``), because the rooms that still use this
algorithm were almost all created by Synapse and every server must land on the same state:

* A key some state sets lack is not a conflict ("different event_ids for the same
  (event_type, state_key)"): the sets that have it agree, so it is unconflicted.
* Each conflicted key is resolved against *R* as it stood before its phase: the member keys
  do not see each other's outcome (the spec gives no order among them, and this way none is
  needed), nor do the other keys.
* When no event of an ordinary key passes the auth check, the last in the order (lowest
  depth, then highest SHA-1) is kept.

Theory of operation
-------------------
Input: the state maps to merge (``(type, state_key) -> event_id``) and the events the
algorithm looks at (``event_map``): every conflicted event, and the event at every key of the
unconflicted state that :func:`auth_keys` names for them. Nothing else is read: unlike v2,
v1 never looks at an event's own ``auth_events``, so it needs no auth chains.

1. *R* starts as the unconflicted state.
2. Power levels, then join rules, then member events: for each conflicted key of that type,
   sort its events by ascending depth, then descending ``sha1(event_id)``; the first goes into
   *R* unchecked, each next one replaces it if the auth rules allow it against *R*, and the
   first refusal ends the key.
3. Every other conflicted key: of its events by descending depth, then ascending
   ``sha1(event_id)``, the first that the auth rules allow against *R*.
"""

from __future__ import annotations

import hashlib
from collections import ChainMap
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from homeserver.protocol.auth_rules import (
    auth_types_for_event,
    check_auth_rules,
    signature_present,
)
from homeserver.protocol.errors import AuthError
from homeserver.protocol.room_versions import RoomVersion
from homeserver.protocol.state_keys import CREATE, POWER_LEVELS, StateKey

Event = Mapping[str, Any]
EventMap = Mapping[str, Event]


def _phase(key: StateKey) -> int:
    """Which pass resolves a conflicted key: 0 power levels, 1 join rules, 2 members (the
    three replayed through the auth rules, in this order), 3 everything else. Like Synapse,
    only the power levels event with the empty state key counts as power levels."""
    if key == POWER_LEVELS:
        return 0
    return {"m.room.join_rules": 1, "m.room.member": 2}.get(key[0], 3)


def split_state(
    state_sets: Sequence[Mapping[StateKey, str]],
) -> tuple[dict[StateKey, str], dict[StateKey, set[str]]]:
    """The unconflicted state, and each conflicted key with its events."""
    values: dict[StateKey, set[str]] = {}
    for state in state_sets:
        for key, event_id in state.items():
            values.setdefault(key, set()).add(event_id)
    unconflicted = {k: next(iter(v)) for k, v in values.items() if len(v) == 1}
    conflicted = {k: v for k, v in values.items() if len(v) > 1}
    return unconflicted, conflicted


def _auth_keys_of(event: Event, room_version: RoomVersion) -> set[StateKey]:
    state_key = event.get("state_key")
    keys = auth_types_for_event(
        str(event.get("type")), str(event.get("sender")),
        state_key if isinstance(state_key, str) else None,
        event.get("content") or {}, room_version,
    )
    return {CREATE, *keys}


def auth_keys(room_version: RoomVersion, events: Iterable[Event]) -> set[StateKey]:
    """The state keys the auth checks of ``events`` read: the caller loads the events at
    these keys of the state sets, besides the conflicted events themselves."""
    return {key for event in events for key in _auth_keys_of(event, room_version)}


def _sha1(event_id: str) -> str:
    # Synapse hashes the UTF-8 bytes (v1 event IDs are not always ASCII) and compares hex.
    return hashlib.sha1(event_id.encode("utf-8")).hexdigest()


def _depth(event: Event) -> int:
    depth = event.get("depth")
    return depth if isinstance(depth, int) else 0


class _Resolver:
    def __init__(self, room_version: RoomVersion, event_map: EventMap) -> None:
        self.rv = room_version
        self.events = event_map

    def _event(self, event_id: str) -> Event:
        event = self.events.get(event_id)
        if event is None:
            raise ValueError(f"state resolution needs an event that was not loaded: {event_id}")
        return event

    def oldest_first(self, event_ids: Iterable[str]) -> list[str]:
        """Ascending depth, then descending ``sha1(event_id)``."""
        by_hash = sorted(event_ids, key=_sha1, reverse=True)
        return sorted(by_hash, key=lambda e: _depth(self._event(e)))

    def allowed(self, event_id: str, state: Mapping[StateKey, str]) -> bool:
        """Whether the auth rules allow the event in a room whose state is ``state``."""
        event = self._event(event_id)
        auth_state = {
            key: self._event(state[key])
            for key in _auth_keys_of(event, self.rv) if key in state
        }
        try:
            # Events already accepted: their signatures were verified on receipt.
            check_auth_rules(event, auth_state, self.rv, is_signed_by=signature_present)
        except AuthError:
            return False
        return True

    def resolve_auth_key(
        self, key: StateKey, event_ids: set[str], state: dict[StateKey, str]
    ) -> str:
        """The first event in, then each next one while the auth rules allow it."""
        first, *rest = self.oldest_first(event_ids)
        # R with this key overlaid: a copy of a large room's state per key would be waste.
        trial = ChainMap({key: first}, state)
        for event_id in rest:
            if not self.allowed(event_id, trial):
                break
            trial[key] = event_id
        return trial[key]

    def resolve_other_key(self, event_ids: set[str], state: Mapping[StateKey, str]) -> str:
        """The newest event the auth rules allow (the oldest when none is allowed)."""
        newest_first = list(reversed(self.oldest_first(event_ids)))
        return next((e for e in newest_first if self.allowed(e, state)), newest_first[-1])


def resolve_state_v1(
    room_version: RoomVersion,
    state_sets: Sequence[Mapping[StateKey, str]],
    event_map: EventMap,
) -> dict[StateKey, str]:
    """Resolve ``state_sets`` into one state map (state resolution v1).

    ``event_map`` must hold every conflicted event and, for the keys :func:`auth_keys` names
    for them, the unconflicted events at those keys; a missing one raises ``ValueError``.
    """
    unconflicted, conflicted = split_state(state_sets)
    resolver = _Resolver(room_version, event_map)
    resolved = dict(unconflicted)
    for phase in range(4):
        before = dict(resolved)
        for key in (k for k in conflicted if _phase(k) == phase):
            resolved[key] = (
                resolver.resolve_auth_key(key, conflicted[key], before) if phase < 3
                else resolver.resolve_other_key(conflicted[key], before)
            )
    return resolved
