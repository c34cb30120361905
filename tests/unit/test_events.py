"""build_event and client_event, across room versions 10-12."""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.protocol.errors import InvalidEventError
from homeserver.protocol.events import build_event, client_event
from homeserver.protocol.hashing import check_content_hash, compute_event_id, compute_room_id
from homeserver.protocol.room_versions import ROOM_V10, ROOM_V11, ROOM_V12, RoomVersion
from homeserver.protocol.signing import (
    generate_signing_key,
    key_id,
    verify_event_signature,
    verify_key_of,
)

KEY = generate_signing_key("k1")
PREV = "$" + "A" * 43


def build(rv: RoomVersion, **kw: Any) -> tuple[str, dict[str, Any]]:
    args: dict[str, Any] = {
        "room_version": rv,
        "room_id": "!r:example.org",
        "sender": "@alice:example.org",
        "event_type": "m.room.message",
        "content": {"body": "hi"},
        "state_key": None,
        "prev_events": [PREV],
        "auth_events": [PREV],
        "depth": 2,
        "origin_server_ts": 42,
        "server_name": "example.org",
        "signing_key": KEY,
        **kw,
    }
    return build_event(**args)


@pytest.mark.parametrize("rv", [ROOM_V10, ROOM_V11, ROOM_V12])
def test_built_event_is_hashed_signed_and_identified(rv: RoomVersion) -> None:
    event_id, pdu = build(rv, unsigned={"age": 1})
    assert "event_id" not in pdu
    assert event_id == compute_event_id(pdu, rv)
    assert check_content_hash(pdu)
    verify_event_signature(pdu, "example.org", key_id(KEY), verify_key_of(KEY), rv)
    assert pdu["unsigned"] == {"age": 1}
    assert "state_key" not in pdu


def test_v12_create_has_no_room_id() -> None:
    event_id, pdu = build(ROOM_V12, room_id=None, event_type="m.room.create",
                          content={"room_version": "12"}, state_key="", prev_events=[],
                          auth_events=[], depth=1)
    assert "room_id" not in pdu
    assert compute_room_id(pdu, ROOM_V12) == "!" + event_id[1:]
    with pytest.raises(ValueError):
        build(ROOM_V12, event_type="m.room.create", state_key="")
    with pytest.raises(ValueError):
        build(ROOM_V11, room_id=None)


def test_redacts_placement() -> None:
    _, v10 = build(ROOM_V10, event_type="m.room.redaction", content={}, redacts=PREV)
    assert v10["redacts"] == PREV and "redacts" not in v10["content"]
    for rv in (ROOM_V11, ROOM_V12):
        _, pdu = build(rv, event_type="m.room.redaction", content={}, redacts=PREV)
        assert pdu["content"]["redacts"] == PREV and "redacts" not in pdu


def test_content_is_copied() -> None:
    content = {"body": "hi"}
    _, pdu = build(ROOM_V11, content=content)
    pdu["content"]["body"] = "changed"
    assert content == {"body": "hi"}


def test_oversized_event_is_refused() -> None:
    with pytest.raises(InvalidEventError):
        build(ROOM_V11, content={"body": "x" * 70000})


def test_client_event_shape() -> None:
    event_id, pdu = build(ROOM_V11, event_type="m.room.topic", content={"topic": "t"},
                          state_key="")
    ce = client_event(pdu, event_id, "!r:example.org", unsigned={"age": 3})
    assert ce == {
        "content": {"topic": "t"},
        "event_id": event_id,
        "origin_server_ts": 42,
        "room_id": "!r:example.org",
        "sender": "@alice:example.org",
        "state_key": "",
        "type": "m.room.topic",
        "unsigned": {"age": 3},
    }
    _, msg = build(ROOM_V11)
    assert "state_key" not in client_event(msg, "$x", "!r:example.org")
    assert "unsigned" not in client_event(msg, "$x", "!r:example.org")


def test_client_event_mirrors_redacts() -> None:
    _, v11 = build(ROOM_V11, event_type="m.room.redaction", content={"reason": "r"},
                   redacts=PREV)
    ce = client_event(v11, "$x", "!r:example.org")
    assert ce["redacts"] == PREV and ce["content"]["redacts"] == PREV
    _, v10 = build(ROOM_V10, event_type="m.room.redaction", content={}, redacts=PREV)
    ce = client_event(v10, "$x", "!r:example.org")
    assert ce["redacts"] == PREV and ce["content"]["redacts"] == PREV
    assert "redacts" not in v10["content"]  # the PDU itself is untouched
