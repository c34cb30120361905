"""check_event_format: required keys, types, counts and size limits."""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.protocol.errors import InvalidEventError
from homeserver.protocol.event_format import check_event_format
from homeserver.protocol.room_versions import (
    ROOM_V1,
    ROOM_V2,
    ROOM_V3,
    ROOM_V4,
    ROOM_V5,
    ROOM_V6,
    ROOM_V9,
    ROOM_V10,
    ROOM_V11,
    ROOM_V12,
)

EID = "$" + "B" * 43


def pdu(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "auth_events": [EID],
        "content": {},
        "depth": 3,
        "hashes": {"sha256": "x"},
        "origin_server_ts": 1,
        "prev_events": [EID],
        "room_id": "!r:example.org",
        "sender": "@a:example.org",
        "signatures": {"example.org": {"ed25519:1": "s"}},
        "type": "m.room.message",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not DROP}


DROP = object()


def eids(n: int) -> list[str]:
    """``n`` distinct event IDs."""
    return [f"${i:043d}" for i in range(n)]


def test_valid_event_passes() -> None:
    for rv in (ROOM_V10, ROOM_V11, ROOM_V12):
        check_event_format(pdu(), rv)
    check_event_format(pdu(type="m.room.create", room_id=DROP, state_key="", prev_events=[],
                           auth_events=[]), ROOM_V12)


@pytest.mark.parametrize(
    "overrides",
    [
        {"sender": DROP}, {"type": DROP}, {"content": DROP}, {"depth": DROP},
        {"hashes": DROP}, {"signatures": DROP}, {"prev_events": DROP}, {"auth_events": DROP},
        {"origin_server_ts": DROP}, {"room_id": DROP},
        {"sender": "alice"}, {"sender": 5}, {"type": 5}, {"state_key": 5},
        {"content": []}, {"depth": "3"}, {"depth": True}, {"depth": 2**53},
        {"origin_server_ts": 1.5}, {"hashes": {}}, {"hashes": {"sha256": 1}},
        {"signatures": {"x": "y"}}, {"prev_events": [EID] * 21}, {"auth_events": [EID] * 11},
        {"prev_events": ["$legacy:example.org"]}, {"auth_events": "x"},
        {"room_id": "not-a-room"}, {"unsigned": []},
        {"type": "t" * 256}, {"state_key": "s" * 256},
        {"sender": "@" + "a" * 250 + ":example.org"},
        {"content": {"body": "x" * 65536}}, {"content": {"f": 0.5}},
        {"prev_events": [EID, EID]}, {"auth_events": eids(2) + eids(1)},
    ],
)
def test_malformed_events_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(InvalidEventError):
        check_event_format(pdu(**overrides), ROOM_V11)


def test_room_id_only_optional_for_v12_create() -> None:
    create = pdu(type="m.room.create", room_id=DROP, state_key="")
    with pytest.raises(InvalidEventError):
        check_event_format(create, ROOM_V11)
    with pytest.raises(InvalidEventError):
        check_event_format(pdu(room_id=DROP), ROOM_V12)


def test_limits_are_inclusive() -> None:
    check_event_format(pdu(prev_events=eids(20), auth_events=eids(10),
                           state_key="s" * 255, type="t" * 255), ROOM_V11)
    body = "x" * (65536 - len(b'{"body":""}') - 400)
    check_event_format(pdu(content={"body": body}), ROOM_V11)


def test_v10_redacts_must_be_a_string() -> None:
    with pytest.raises(InvalidEventError):
        check_event_format(pdu(type="m.room.redaction", redacts=5), ROOM_V10)
    with pytest.raises(InvalidEventError):
        check_event_format(pdu(type="m.room.redaction", content={"redacts": 5}), ROOM_V11)


# -- rooms v1-v9 -------------------------------------------------------------------------------

V1_REF = ["$af232176:example.org", {"sha256": "abase64encodedsha256hashshouldbe43byteslong"}]


def v1_pdu(**overrides: Any) -> dict[str, Any]:
    """The spec's pdu_v1 example: an event_id, and [event_id, hashes] pairs."""
    return pdu(**{"event_id": "$a4ecee13e2accdadf56c1025:example.com",
                  "auth_events": [V1_REF], "prev_events": [V1_REF], **overrides})


def test_v1_v2_events_carry_their_id_and_pair_references_with_hashes() -> None:
    for rv in (ROOM_V1, ROOM_V2):
        check_event_format(v1_pdu(), rv)
        check_event_format(v1_pdu(type="m.room.create", prev_events=[], auth_events=[]), rv)
        # Synapse pairs an event it does not hold as it builds with empty hashes.
        check_event_format(v1_pdu(auth_events=[[V1_REF[0], {}]]), rv)
        for bad in (
            {"event_id": DROP}, {"event_id": "$" + "B" * 43}, {"event_id": 5},
            {"prev_events": [EID]}, {"auth_events": ["$af232176:example.org"]},
            {"prev_events": [V1_REF[:1]]}, {"prev_events": [[*V1_REF, {}]]},
            {"prev_events": [[V1_REF[0], {"sha256": 5}]]}, {"prev_events": [[V1_REF[0], []]]},
            {"prev_events": [V1_REF, [V1_REF[0], {"sha256": "other"}]]},
            {"auth_events": [V1_REF] * 11},
        ):
            with pytest.raises(InvalidEventError):
                check_event_format(v1_pdu(**bad), rv)
    with pytest.raises(InvalidEventError):
        check_event_format(v1_pdu(), ROOM_V3)  # pairs are no v3 references


def test_v3_references_are_standard_base64_and_v4_url_safe() -> None:
    v3_id = "$acR1l0raoZnm60CBwAVgqbZqoO/mYU81xysh1u7XcJk"
    v4_id = "$Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg"
    check_event_format(pdu(prev_events=[v3_id], auth_events=[]), ROOM_V3)
    with pytest.raises(InvalidEventError):
        check_event_format(pdu(prev_events=[v4_id]), ROOM_V3)
    for rv in (ROOM_V4, ROOM_V10):
        check_event_format(pdu(prev_events=[v4_id]), rv)
        with pytest.raises(InvalidEventError):
            check_event_format(pdu(prev_events=[v3_id]), rv)


def test_numbers_before_and_after_v6() -> None:
    """pdu_v1/v3/v4: depth below 2**63 - 1 and no canonical JSON number rules (v1-v5);
    pdu_v6 on: canonical JSON, so depth (and every number) within 2**53 - 1, no floats."""
    lenient = {"depth": 2**62, "content": {"f": 0.5, "n": 2**60}, "origin_server_ts": 2**54}
    check_event_format(v1_pdu(**lenient), ROOM_V1)
    check_event_format(pdu(**lenient), ROOM_V5)
    check_event_format(pdu(depth=2**63 - 1), ROOM_V4)
    with pytest.raises(InvalidEventError):
        check_event_format(pdu(depth=2**63), ROOM_V4)
    for rv in (ROOM_V6, ROOM_V9):
        for key, value in lenient.items():
            with pytest.raises(InvalidEventError):
                check_event_format(pdu(**{key: value}), rv)
