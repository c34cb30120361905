"""build_event and client_event, across room versions 1-12."""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.protocol.errors import InvalidEventError
from homeserver.protocol.events import build_event, client_event
from homeserver.protocol.hashing import check_content_hash, compute_event_id, compute_room_id
from homeserver.protocol.room_versions import (
    KNOWN_ROOM_VERSIONS,
    ROOM_V1,
    ROOM_V2,
    ROOM_V10,
    ROOM_V11,
    ROOM_V12,
    RoomVersion,
)
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


@pytest.mark.parametrize("rv", [v for v in KNOWN_ROOM_VERSIONS.values() if v != ROOM_V12])
def test_every_version_builds_a_well_formed_event(rv: RoomVersion) -> None:
    prev: Any = PREV
    if rv.event_id_format == "v1":
        prev = ["$p:example.org", {"sha256": "h"}]
    elif rv.event_id_format == "v3":
        prev = "$" + "A/+" * 14 + "A"
    own_id = "$m1:example.org" if rv.event_id_in_pdu else None
    event_id, pdu = build(rv, prev_events=[prev], auth_events=[prev], event_id=own_id)
    assert event_id == compute_event_id(pdu, rv)
    assert (pdu.get("event_id") == "$m1:example.org") is rv.event_id_in_pdu
    assert check_content_hash(pdu, rv)
    verify_event_signature(pdu, "example.org", key_id(KEY), verify_key_of(KEY), rv)


def test_event_id_is_chosen_in_v1_v2_only() -> None:
    for rv in (ROOM_V1, ROOM_V2):
        with pytest.raises(ValueError):
            build(rv, prev_events=[], auth_events=[])
    with pytest.raises(ValueError):
        build(ROOM_V10, event_id="$m1:example.org")


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
