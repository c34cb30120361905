"""Content hashes, reference hashes, event IDs and v12 room IDs."""

from __future__ import annotations

import hashlib
import re

import pytest
from unpaddedbase64 import decode_base64, encode_base64

from homeserver.protocol.canonical_json import encode_canonical_json
from homeserver.protocol.errors import CanonicalJSONError, InvalidEventError
from homeserver.protocol.event_refs import event_reference, is_event_id_for, referenced_event_ids
from homeserver.protocol.hashing import (
    add_content_hash,
    check_content_hash,
    compute_content_hash,
    compute_event_id,
    compute_reference_hash,
    compute_room_id,
)
from homeserver.protocol.identifiers import is_hash_event_id, is_v3_event_id
from homeserver.protocol.redaction import redact_event
from homeserver.protocol.room_versions import (
    ROOM_V1,
    ROOM_V2,
    ROOM_V3,
    ROOM_V4,
    ROOM_V5,
    ROOM_V6,
    ROOM_V10,
    ROOM_V11,
    ROOM_V12,
)

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


# -- event IDs of rooms v1-v3, and what prev_events/auth_events hold -------------------------

def test_v1_v2_event_id_is_the_one_the_pdu_carries() -> None:
    event = add_content_hash({**EVENT, "event_id": "$a4ecee13e2accdadf56c1025:example.com"})
    for rv in (ROOM_V1, ROOM_V2):
        assert compute_event_id(event, rv) == "$a4ecee13e2accdadf56c1025:example.com"
        for bad in (None, "$no-server", "$" + "A" * 43, 5):
            with pytest.raises(InvalidEventError):
                compute_event_id({**event, "event_id": bad}, rv)


def test_v1_reference_hash_covers_the_event_id() -> None:
    """Redaction keeps event_id, so the reference hash a v1 prev_events pair carries pins the
    ID as well as (through the content hash) the content."""
    event = add_content_hash({**EVENT, "event_id": "$1:example.org"})
    ref = compute_reference_hash(event, ROOM_V1)
    assert compute_reference_hash({**event, "event_id": "$2:example.org"}, ROOM_V1) != ref
    assert event_reference("$1:example.org", event, ROOM_V1) == [
        "$1:example.org", {"sha256": encode_base64(ref)}]
    assert event_reference("$x", event, ROOM_V4) == "$x"
    assert referenced_event_ids([["$1:example.org", {"sha256": "h"}], "$b", 5, ["$c"]]) == [
        "$1:example.org", "$b"]


def test_v3_event_id_is_standard_base64_and_v4_url_safe() -> None:
    # Find an event whose reference hash has both a "+" and a "/" in standard base64.
    for n in range(1000):
        event = add_content_hash({**EVENT, "depth": n})
        v3 = compute_event_id(event, ROOM_V3)
        if "+" in v3 and "/" in v3:
            break
    assert is_v3_event_id(v3) and not is_hash_event_id(v3)
    assert decode_base64(v3[1:]) == compute_reference_hash(event, ROOM_V3)
    v4 = compute_event_id(event, ROOM_V4)
    assert v4 == v3.replace("+", "-").replace("/", "_")
    assert is_hash_event_id(v4)
    # The spec's examples (rooms/v3.md, v4.md)
    assert is_v3_event_id("$acR1l0raoZnm60CBwAVgqbZqoO/mYU81xysh1u7XcJk")
    assert is_hash_event_id("$Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg")
    assert is_event_id_for("$acR1l0raoZnm60CBwAVgqbZqoO/mYU81xysh1u7XcJk", ROOM_V3)
    assert not is_event_id_for("$acR1l0raoZnm60CBwAVgqbZqoO/mYU81xysh1u7XcJk", ROOM_V4)
    assert is_event_id_for("$a:b.example", ROOM_V2) and not is_event_id_for("$a:b", ROOM_V3)


def test_content_hash_admits_floats_and_big_integers_before_v6_only() -> None:
    event = {**EVENT, "content": {"n": 2**60, "f": 1.5}}
    for rv in (ROOM_V1, ROOM_V5):
        hashed = add_content_hash(event, rv)
        assert check_content_hash(hashed, rv)
        assert b'"content":{"f":1.5,"n":1152921504606846976}' in encode_canonical_json(
            event, strict=False)
        assert decode_base64(hashed["hashes"]["sha256"]) == hashlib.sha256(
            encode_canonical_json(event, strict=False)).digest()
        compute_reference_hash(hashed, rv)
    for strict in (None, ROOM_V6):
        with pytest.raises(CanonicalJSONError):
            compute_content_hash(event, strict)
