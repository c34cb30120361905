"""Synapse's state resolution v1 over cases on stdin, for comparing Moot's with it.

Not imported by the tests: `tests/interop/test_state_res_v1_synapse.py` runs this file with
the Synapse venv's interpreter (`bench/.synapse-venv`). Input: a JSON list of cases, each
``{"room_id", "events": {event_id: pdu}, "state_sets": [[type, state_key, event_id], ...]}``;
output: a JSON list of the resolved states in the same ``[type, state_key, event_id]`` form.
The events are room version 1 PDUs (each carries its `event_id`), read and resolved as
Synapse's room version 1.
"""

import asyncio
import json
import sys

import synapse.event_auth  # noqa: F401  (imported first: synapse.state imports it circularly)
from synapse.api.room_versions import RoomVersions
from synapse.events import make_event_from_dict
from synapse.state import v1


async def resolve(case):
    events = {}
    for event_id, pdu in case["events"].items():
        event = make_event_from_dict(pdu, RoomVersions.V1)
        assert event.event_id == event_id, (event.event_id, event_id)
        events[event_id] = event

    async def nothing_more(_event_ids):
        return {}  # every event is in the event map already

    state_sets = [{(t, k): e for t, k, e in s} for s in case["state_sets"]]
    resolved = await v1.resolve_events_with_store(
        case["room_id"], RoomVersions.V1, state_sets, events, nothing_more
    )
    return sorted([t, k, e] for (t, k), e in resolved.items())


async def main():
    cases = json.load(sys.stdin)
    json.dump([await resolve(case) for case in cases], sys.stdout)


asyncio.run(main())
