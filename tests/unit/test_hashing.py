"""Content hashes, reference hashes, event IDs and v12 room IDs."""

from __future__ import annotations

import hashlib
import re

import pytest
from unpaddedbase64 import decode_base64

from homeserver.protocol.canonical_json import encode_canonical_json
from homeserver.protocol.hashing import (
    add_content_hash,
    check_content_hash,
    compute_content_hash,
    compute_event_id,
    compute_reference_hash,
    compute_room_id,
)
from homeserver.protocol.redaction import redact_event
from homeserver.protocol.room_versions import ROOM_V10, ROOM_V11, ROOM_V12

EVENT = {
    "auth_events": [],
    "content": {"body": "hi", "msgtype": "m.text"},
    "depth": 5,
    "origin_server_ts": 1234,
    "prev_events": [],
    "room_id": "!r:example.org",
    "sender": "@u:example.org",
    "type": "m.room.message",
}


def test_content_hash_ignores_unsigned_signatures_and_hashes() -> None:
    plain = compute_content_hash(EVENT)
    decorated = {**EVENT, "unsigned": {"age": 1}, "signatures": {"s": {}}, "hashes": {"x": "y"}}
    assert compute_content_hash(decorated) == plain
    expected = hashlib.sha256(encode_canonical_json(EVENT)).digest()
    assert decode_base64(plain) == expected
    assert "=" not in plain and "-" not in plain and "_" not in plain


def test_content_hash_covers_content() -> None:
    assert compute_content_hash(EVENT) != compute_content_hash({**EVENT, "content": {}})


def test_add_and_check_content_hash() -> None:
    hashed = add_content_hash(EVENT)
    assert "hashes" not in EVENT  # input untouched
    assert hashed["hashes"]["sha256"] == compute_content_hash(EVENT)
    assert check_content_hash(hashed)
    assert check_content_hash({**hashed, "unsigned": {"age": 99}})
    assert not check_content_hash({**hashed, "depth": 6})
    assert not check_content_hash(EVENT)
    assert not check_content_hash({**EVENT, "hashes": {"sha256": "%%%"}})
    assert not check_content_hash({**EVENT, "hashes": []})


@pytest.mark.parametrize("rv", [ROOM_V10, ROOM_V11, ROOM_V12])
def test_reference_hash_is_over_the_redacted_event(rv: object) -> None:
    from homeserver.protocol.room_versions import RoomVersion

    assert isinstance(rv, RoomVersion)
    event = add_content_hash(EVENT)
    ref = compute_reference_hash(event, rv)
    stripped = redact_event(event, rv)
    assert ref == hashlib.sha256(encode_canonical_json(stripped)).digest()
    # unsigned and signatures never matter; content matters only through the content hash
    assert compute_reference_hash({**event, "unsigned": {"a": 1}, "signatures": {"x": {}}},
                                  rv) == ref
    assert compute_reference_hash({**event, "content": {}}, rv) == ref
    assert compute_reference_hash(add_content_hash({**EVENT, "content": {}}), rv) != ref


def test_event_id_format_and_determinism() -> None:
    event = add_content_hash(EVENT)
    event_id = compute_event_id(event, ROOM_V11)
    assert re.fullmatch(r"\$[A-Za-z0-9_\-]{43}", event_id)
    assert event_id == compute_event_id(dict(reversed(list(event.items()))), ROOM_V11)
    assert decode_base64(event_id[1:]) == compute_reference_hash(event, ROOM_V11)


def test_event_id_differs_between_redaction_rule_sets_when_origin_present() -> None:
    event = add_content_hash({**EVENT, "origin": "example.org"})
    assert compute_event_id(event, ROOM_V10) != compute_event_id(event, ROOM_V11)


def test_v12_room_id_is_create_event_id_with_bang() -> None:
    create = add_content_hash(
        {
            "auth_events": [],
            "content": {"room_version": "12"},
            "depth": 1,
            "origin_server_ts": 1,
            "prev_events": [],
            "sender": "@alice:example.org",
            "state_key": "",
            "type": "m.room.create",
        }
    )
    room_id = compute_room_id(create, ROOM_V12)
    assert room_id == "!" + compute_event_id(create, ROOM_V12)[1:]
    assert re.fullmatch(r"![A-Za-z0-9_\-]{43}", room_id)
    with pytest.raises(ValueError):
        compute_room_id(create, ROOM_V11)
