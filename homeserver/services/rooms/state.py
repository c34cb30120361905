"""The state of a room where its DAG forks: the state at several events, merged by state
resolution.

The resolution algorithm itself is pure (`protocol/state_res.py`); this module loads what it
needs and stores the result as a state group, so that later events on top of a merge read it
like any other state. v2 needs the conflicted events, the auth-chain difference and the auth
chains of all of those; v1 (room version 1) only the conflicted events and the state events
their auth checks read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from homeserver.protocol import state_res, state_res_v1
from homeserver.protocol.room_versions import RoomVersion
from homeserver.protocol.state_keys import CREATE, StateKey
from storage import event_graph
from storage import events as events_store
from storage import state as state_store
from storage.events import StoredEvent
from storage.state import StateMap


async def resolve(
    conn: asyncpg.Connection, room_version: RoomVersion, state_sets: Sequence[StateMap]
) -> StateMap:
    """Merge state maps with the room version's state resolution algorithm."""
    if not state_sets:
        return {}
    first = state_sets[0]
    if all(s == first for s in state_sets[1:]):
        return dict(first)
    if room_version.state_res == "v1":
        return await _resolve_v1(conn, room_version, state_sets)
    keys = {k for s in state_sets for k in s}
    conflicted = {
        s[k] for k in keys for s in state_sets
        if k in s and any(other.get(k) != s[k] for other in state_sets)
    }
    chains = [await event_graph.get_auth_chain_ids(conn, s.values()) for s in state_sets]
    union: set[str] = set().union(*chains)
    common: set[str] = chains[0].intersection(*chains[1:])
    difference = union - common
    wanted = conflicted | difference
    wanted |= await event_graph.get_auth_chain_ids(conn, wanted)
    create = first.get(CREATE)
    if create is not None:
        wanted.add(create)  # v12 names it in no auth_events, yet every check needs it
    stored = await events_store.get_events(conn, wanted)
    event_map = _parsed(stored)
    rejected = {i for i, e in stored.items() if e.rejected}
    return state_res.resolve_state(
        room_version, state_sets, event_map, difference, rejected_events=rejected
    )


async def _resolve_v1(
    conn: asyncpg.Connection, room_version: RoomVersion, state_sets: Sequence[StateMap]
) -> StateMap:
    """v1 reads no auth chains: the conflicted events, then the state at the keys their auth
    checks name (two reads, however long the room's history)."""
    _, conflicted = state_res_v1.split_state(state_sets)
    event_map = _parsed(await events_store.get_events(conn, set().union(*conflicted.values())))
    keys = state_res_v1.auth_keys(room_version, event_map.values())
    wanted = {s[k] for s in state_sets for k in keys if k in s} - event_map.keys()
    event_map.update(_parsed(await events_store.get_events(conn, wanted)))
    return state_res.resolve_state(room_version, state_sets, event_map, set())


def _parsed(stored: Mapping[str, StoredEvent]) -> dict[str, dict[str, Any]]:
    return {i: json.loads(e.json) for i, e in stored.items()}


async def state_group_for(
    conn: asyncpg.Connection, room_id: str, base_group: int | None, base: StateMap,
    state: Mapping[StateKey, str],
) -> int:
    """A state group holding exactly `state`, stored as a delta on `base_group` (whose state
    is `base`); keys `state` lacks are cut by starting a full snapshot instead."""
    if base_group is not None and all(k in state for k in base):
        delta = {k: v for k, v in state.items() if base.get(k) != v}
        if not delta:
            return base_group
        return await state_store.insert_state_group(conn, room_id, base_group, delta)
    return await state_store.insert_state_group(conn, room_id, None, dict(state))


async def merged_state(
    conn: asyncpg.Connection, room_id: str, room_version: RoomVersion, groups: Sequence[int],
) -> tuple[StateMap, int]:
    """The resolved state after several events (by their state groups), and a group for it."""
    unique = list(dict.fromkeys(groups))
    if not unique:  # after no event at all (before the create event): nothing
        return {}, await state_store.insert_state_group(conn, room_id, None, {})
    if len(unique) == 1:
        return await state_store.get_state(conn, unique[0]), unique[0]
    sets = [await state_store.get_state(conn, g) for g in unique]
    state = await resolve(conn, room_version, sets)
    return state, await state_group_for(conn, room_id, unique[0], sets[0], state)


async def state_before_event(conn: asyncpg.Connection, stored: StoredEvent) -> StateMap:
    """The state before a stored event: its own state group (the state after it) with its own
    key put back to what it replaced. Empty for an outlier, which has no state of its own."""
    if stored.state_group is None:
        return {}
    state = await state_store.get_state(conn, stored.state_group)
    if stored.state_key is not None and not stored.rejected:
        key = (stored.type, stored.state_key)
        if stored.replaces_state is not None:
            state[key] = stored.replaces_state
        else:
            state.pop(key, None)
    return state
