"""Every room version's protocol rules agree with Synapse's on the same events.

Rooms of versions 1 to 9 are almost all Synapse's, and a server that computes another event
ID, reference hash or auth verdict than Synapse for one of their events splits from the room.
For each version 1-12 a `RoomBuilder` room is grown with the events where the versions differ
(string and float power levels, m.room.aliases, redactions, notifications levels, numbers
canonical JSON refuses, knocks and restricted joins), and `tests/synapse_room_versions.py`
reads the same events with Synapse's own code in the Synapse venv: IDs, reference hashes and
content hashes must be equal, and so must the verdicts on probes judged against the room's
state, each of which some version allows and another refuses.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from unpaddedbase64 import encode_base64

from homeserver.protocol.auth_rules import check_auth_rules
from homeserver.protocol.errors import AuthError
from homeserver.protocol.hashing import check_content_hash, compute_event_id, compute_reference_hash
from homeserver.protocol.state_keys import JOIN_RULES, StateKey
from tests.synapse_peer import synapse_python
from tests.unit.room_builder import RoomBuilder

pytestmark = pytest.mark.synapse

SCRIPT = Path(__file__).resolve().parents[1] / "synapse_room_versions.py"
ALICE = "@alice:a.example"
BOB = "@bob:b.example"
BOBBY = "@bobby:b.example"
CAROL = "@carol:c.example"
DAVE = "@dave:d.example"
Event = dict[str, Any]
# Allowed in every version: v1-v2 by their rule 11.2, from v3 as any event. A control for the
# probe of a redaction of another server's event, which v1-v2 refuse.
SAME_SERVER_REDACTION = "redaction by a low user of their server's event"


def grown_room(version: str) -> RoomBuilder:
    v = int(version)
    b = RoomBuilder.standard(version, join_rule="public")
    for user in (BOB, BOBBY, CAROL):
        b.join(user)
    b.send(BOB, "m.room.member", {"membership": "join", "displayname": "Bob"}, BOB)
    pl = b.power_levels()
    b.set_power_levels(ALICE, {**pl, "users": {**pl["users"], BOB: 50},
                               "events": {**pl["events"], "m.room.power_levels": 50},
                               "notifications": {"room": 20}})
    if v <= 9:
        pl = b.power_levels()
        b.set_power_levels(BOB, {**pl, "kick": " +050 ", "users": {**pl["users"], CAROL: "10"}})
    if v <= 5:
        b.send(BOB, "org.example.numbers", {"f": 1.5, "n": 2**60, "e": 5.114698e4})
        pl = b.power_levels()
        b.set_power_levels(BOB, {**pl, "users": {**pl["users"], BOBBY: 5.9}})
        b.send(CAROL, "m.room.aliases", {"aliases": ["#c:c.example"]}, "c.example")
    target = b.message(BOB, "to be redacted")
    b.send(BOBBY, "m.room.redaction", {"redacts": target} if v >= 11 else {},
           redacts=None if v >= 11 else target)
    b.message(ALICE, "alice's")
    b.set_join_rule(ALICE, "knock" if v >= 7 else "invite")
    return b


def _with_join_rule(b: RoomBuilder, rule: str) -> dict[StateKey, Event]:
    _, join_rules = b.make(ALICE, "m.room.join_rules", {"join_rule": rule, "allow": []}, "")
    return {**b.auth_state(), JOIN_RULES: join_rules}


def probes(b: RoomBuilder) -> list[tuple[str, Event, dict[StateKey, Event]]]:
    """(what, event, state to judge it against): each is allowed in some versions only."""
    state = b.auth_state()
    alices = next(i for i, e in reversed(b.events.items()) if e["sender"] == ALICE
                  and e["type"] == "m.room.message")
    bobs = next(i for i, e in b.events.items() if e["sender"] == BOB
                and e["type"] == "m.room.message")
    v11 = b.rv.redacts_in_content
    pl = b.power_levels()
    out = [
        ("knock", b.make(DAVE, "m.room.member", {"membership": "knock"}, DAVE)[1], state),
        ("aliases by a non-member",
         b.make(DAVE, "m.room.aliases", {"aliases": ["#d:d.example"]}, "d.example")[1], state),
        ("redaction by a low user of another server's event",
         b.make(CAROL, "m.room.redaction", {"redacts": alices} if v11 else {},
                redacts=None if v11 else alices)[1], state),
        (SAME_SERVER_REDACTION,
         b.make(BOBBY, "m.room.redaction", {"redacts": bobs} if v11 else {},
                redacts=None if v11 else bobs)[1], state),
        ("notifications level above the sender's",
         b.make(BOB, "m.room.power_levels", {**pl, "notifications": {"room": 60}}, "")[1],
         state),
        ("a level spelt as a string",
         b.make(BOB, "m.room.power_levels", {**pl, "ban": " 40 "}, "")[1], state),
    ]
    for rule in ("restricted", "knock_restricted"):
        join = {"membership": "join", "join_authorised_via_users_server": ALICE}
        _, pdu = b.make(DAVE, "m.room.member", join, DAVE, cosign="a.example")
        out.append((f"{rule} join", pdu, _with_join_rule(b, rule)))
    _, unsigned = b.make(DAVE, "m.room.member",
                         {"membership": "join", "join_authorised_via_users_server": ALICE}, DAVE)
    out.append(("public join naming an authoriser who did not sign", unsigned,
                _with_join_rule(b, "public")))
    return out


def moot_verdict(b: RoomBuilder, pdu: Event, state: dict[StateKey, Event]) -> str:
    try:
        check_auth_rules(pdu, state, b.rv, is_signed_by=b.is_signed_by)
    except AuthError:
        return "rejected"
    return "allowed"


def test_every_room_version_reads_and_judges_events_as_synapse_does() -> None:
    cases, expected = [], []
    for version in map(str, range(1, 13)):
        b = grown_room(version)
        events = list(b.events.items())
        judged = probes(b)
        cases.append({
            "version": version,
            "events": [pdu for _, pdu in events],
            "probes": [{"pdu": pdu, "state": list(state.values())} for _, pdu, state in judged],
        })
        expected.append({
            "events": [{
                "event_id": compute_event_id(pdu, b.rv),
                "reference_hash": encode_base64(compute_reference_hash(pdu, b.rv)),
                "content_hash_ok": check_content_hash(pdu, b.rv),
            } for _, pdu in events],
            "probes": [moot_verdict(b, pdu, state) for _, pdu, state in judged],
            "names": [what for what, _, _ in judged],
        })
    done = subprocess.run(
        [str(synapse_python()), str(SCRIPT)], input=json.dumps(cases), capture_output=True,
        text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    synapse = json.loads(done.stdout)
    verdicts: dict[str, set[str]] = {}
    for version, (ours, theirs) in enumerate(zip(expected, synapse, strict=True), start=1):
        assert ours["events"] == theirs["events"], f"room version {version}"
        assert all(e["content_hash_ok"] for e in ours["events"])
        for name, mine, synapses in zip(ours["names"], ours["probes"], theirs["probes"],
                                        strict=True):
            assert mine == synapses, f"room version {version}: {name}: {mine} vs {synapses}"
            verdicts.setdefault(name, set()).add(mine)
    # Every probe but the control tells versions apart: some allow it and some refuse it.
    assert verdicts.pop(SAME_SERVER_REDACTION) == {"allowed"}
    assert all(v == {"allowed", "rejected"} for v in verdicts.values()), verdicts
