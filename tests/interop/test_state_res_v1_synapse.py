"""State resolution v1 agrees with Synapse's on random forks of a room.

Room version 1 rooms were almost all made by Synapse, and servers in one room must land on
the same state, so where rooms/v1.md leaves room for reading we follow Synapse. This test
checks that we do: seeded random plans (`tests.unit.state_forks.grow`) fork a room into two
or three branches, Moot resolves each, and `tests/synapse_state_res_v1.py` resolves the same
events with Synapse's own v1 module in the Synapse venv. Every result must be the same, and
the cases must exercise every pass of the algorithm.
"""

from __future__ import annotations

import collections
import json
import random
import subprocess
from pathlib import Path

import pytest

from homeserver.protocol.room_versions import ROOM_V1
from homeserver.protocol.state_res import resolve_state
from homeserver.protocol.state_res_v1 import split_state
from tests.synapse_peer import synapse_python
from tests.unit.state_forks import KINDS, USERS, grow

pytestmark = pytest.mark.synapse

CASES = 200
SCRIPT = Path(__file__).resolve().parents[1] / "synapse_state_res_v1.py"
DEADLINE_S = 120.0


def random_cases(seed: int) -> tuple[list[dict[str, object]], collections.Counter[str]]:
    """`CASES` forked rooms with at least one conflict, and how many conflicts of each type."""
    rng = random.Random(seed)
    cases: list[dict[str, object]] = []
    conflicts: collections.Counter[str] = collections.Counter()
    while len(cases) < CASES:
        plan = [
            [(rng.choice(USERS), rng.choice(KINDS), rng.choice(USERS),
              rng.choice([0, 50, 100])) for _ in range(rng.randint(0, 8))]
            for _ in range(rng.randint(2, 3))
        ]
        b, state_sets = grow("1", plan)
        _, conflicted = split_state(state_sets)
        if not conflicted:
            continue
        conflicts.update(key[0] for key in conflicted)
        resolved = resolve_state(ROOM_V1, state_sets, b.events, set())
        cases.append({
            "room_id": b.room_id, "events": b.events,
            "state_sets": [[[*k, e] for k, e in s.items()] for s in state_sets],
            "moot": sorted([*k, e] for k, e in resolved.items()),
        })
    return cases, conflicts


def test_moot_resolves_random_forks_as_synapse_does() -> None:
    cases, conflicts = random_cases(seed=16)
    for event_type in ("m.room.power_levels", "m.room.join_rules", "m.room.member",
                       "m.room.topic", "m.room.name"):
        assert conflicts[event_type] >= 3, conflicts  # every pass is exercised
    done = subprocess.run(
        [str(synapse_python()), str(SCRIPT)], input=json.dumps(cases), capture_output=True,
        text=True, timeout=DEADLINE_S, check=False,
    )
    assert done.returncode == 0, done.stderr
    synapse = json.loads(done.stdout)
    differing = [i for i, case in enumerate(cases) if case["moot"] != synapse[i]]
    assert differing == [], f"{len(differing)} of {CASES} cases differ, first {differing[:5]}"
