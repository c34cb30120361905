"""Properties of state resolution in every room version, on random forks of one room.

Hypothesis grows two or three branches from a room with a moderator: on each, random users
set the topic or name, change power levels or join rules, join, leave, invite, kick or ban;
whatever that branch's state refuses is left out, as a server would. Whatever the branches
did, resolving their states must not depend on the order of the state sets, nor on a state
set given twice, must keep the unconflicted state, and can only pick events it was given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS
from homeserver.protocol.state_keys import StateKey
from homeserver.protocol.state_res import resolve_state

from .room_builder import RoomBuilder
from .state_forks import KINDS, USERS, Action, auth_difference, grow

actions = st.tuples(
    st.sampled_from(USERS), st.sampled_from(KINDS), st.sampled_from(USERS),
    st.sampled_from([0, 50, 100]),
)
branches = st.lists(st.lists(actions, max_size=6), min_size=2, max_size=3)


def resolve(b: RoomBuilder, state_sets: Sequence[Mapping[StateKey, str]]) -> dict[StateKey, str]:
    return resolve_state(b.rv, state_sets, b.events, auth_difference(b, state_sets))


@pytest.mark.parametrize("version", list(KNOWN_ROOM_VERSIONS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=branches, data=st.data())
def test_resolution_properties(version: str, plan: list[list[Action]], data: st.DataObject) -> None:
    b, state_sets = grow(version, plan)
    resolved = resolve(b, state_sets)

    shuffled = data.draw(st.permutations(state_sets))
    assert resolve(b, shuffled) == resolved
    assert resolve(b, [*state_sets, state_sets[0]]) == resolved

    values: dict[StateKey, set[str]] = {}
    for state in state_sets:
        for key, event_id in state.items():
            values.setdefault(key, set()).add(event_id)
    assert resolved.keys() <= values.keys()
    for key, event_ids in values.items():
        everywhere = all(key in s for s in state_sets)
        if len(event_ids) == 1 and (everywhere or version == "1"):
            assert resolved[key] in event_ids  # unconflicted (v1: where present at all)
    if version == "1":
        # v1 picks among the conflicting events; v2 may fall back to one of their ancestors.
        assert all(resolved[k] in values[k] for k in resolved)
    else:
        given_events = set().union(*values.values()) | auth_difference(b, state_sets)
        assert set(resolved.values()) <= given_events
