"""check_event_format: required keys, types, counts and size limits."""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.protocol.errors import InvalidEventError
from homeserver.protocol.event_format import check_event_format
from homeserver.protocol.room_versions import ROOM_V10, ROOM_V11, ROOM_V12

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
