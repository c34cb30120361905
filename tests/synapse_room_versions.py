"""Synapse's reading of events of every room version, for comparing Moot's with it.

Not imported by the tests: `tests/interop/test_room_versions_synapse.py` runs this file with
the Synapse venv's interpreter (`bench/.synapse-venv`). Input: a JSON list of cases, each
``{"version", "events": [pdu, ...], "probes": [{"pdu", "state": [pdu, ...]}, ...]}``. Output,
per case: for each event its ID, reference hash (unpadded base64) and whether its content
hash holds, as Synapse computes them; for each probe "allowed" or "rejected" by Synapse's
signature presence check and state-dependent auth rules against the given state.
"""

import json
import sys

import synapse.event_auth as event_auth
from synapse.api.errors import AuthError, SynapseError
from synapse.api.room_versions import KNOWN_ROOM_VERSIONS
from synapse.crypto.event_signing import check_event_content_hash, compute_event_reference_hash
from synapse.events import make_event_from_dict
from unpaddedbase64 import encode_base64


def verdict(pdu, state, room_version):
    event = make_event_from_dict(pdu, room_version)
    auth_events = [make_event_from_dict(e, room_version) for e in state]
    try:
        event_auth.validate_event_for_room_version(event)
        event_auth.check_state_dependent_auth_rules(event, auth_events)
    except (AuthError, SynapseError):
        return "rejected"
    return "allowed"


def read(case):
    room_version = KNOWN_ROOM_VERSIONS[case["version"]]
    events = []
    for pdu in case["events"]:
        event = make_event_from_dict(pdu, room_version)
        events.append({
            "event_id": event.event_id,
            "reference_hash": encode_base64(compute_event_reference_hash(event)[1]),
            "content_hash_ok": check_event_content_hash(event),
        })
    probes = [verdict(p["pdu"], p["state"], room_version) for p in case["probes"]]
    return {"events": events, "probes": probes}


json.dump([read(case) for case in json.load(sys.stdin)], sys.stdout)
