"""Signing: appendices "Cryptographic Test Vectors" and the signing helpers."""

from __future__ import annotations

import copy

import pytest
from unpaddedbase64 import decode_base64

from homeserver.protocol.errors import SignatureError
from homeserver.protocol.hashing import add_content_hash, check_content_hash, compute_event_id
from homeserver.protocol.room_versions import (
    KNOWN_ROOM_VERSIONS,
    ROOM_V1,
    ROOM_V5,
    ROOM_V6,
    ROOM_V10,
    ROOM_V11,
    ROOM_V12,
    RoomVersion,
)
from homeserver.protocol.signing import (
    decode_signing_key_base64,
    decode_verify_key_base64,
    encode_signing_key_base64,
    generate_signing_key,
    key_id,
    read_signing_keys,
    sign_event,
    sign_json,
    verify_event_signature,
    verify_json,
    verify_key_base64,
    verify_key_of,
    write_signing_keys,
)

SEED = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1"
KEY = decode_signing_key_base64("ed25519", "1", SEED)


def test_key_id_and_seed_round_trip() -> None:
    assert key_id(KEY) == "ed25519:1"
    # The spec's seed string has non-zero padding bits; the canonical encoding ends in "0".
    assert decode_base64(encode_signing_key_base64(KEY)) == decode_base64(SEED)


def test_sign_empty_object() -> None:
    assert sign_json({}, "domain", KEY) == {
        "signatures": {
            "domain": {
                "ed25519:1": "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV"
                "/7Xg4ahLwYGYZzuHGZKM5ZAQ"
            }
        }
    }


def test_sign_object_with_data() -> None:
    assert sign_json({"one": 1, "two": "Two"}, "domain", KEY) == {
        "one": 1,
        "signatures": {
            "domain": {
                "ed25519:1": "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vB"
                "ZhG6kYdD13EIMJpvhJI+6Bw"
            }
        },
        "two": "Two",
    }


# The spec's event-signing vectors keep the top-level "origin" key in the redacted form they
# sign, i.e. they use the pre-v11 redaction rules: room version 10 here.
MINIMAL_EVENT = {
    "room_id": "!x:domain",
    "sender": "@a:domain",
    "origin": "domain",
    "origin_server_ts": 1000000,
    "signatures": {},
    "hashes": {},
    "type": "X",
    "content": {},
    "prev_events": [],
    "auth_events": [],
    "depth": 3,
    "unsigned": {"age_ts": 1000000},
}


def test_sign_minimal_event() -> None:
    signed = sign_event(add_content_hash(MINIMAL_EVENT), "domain", KEY, ROOM_V10)
    assert signed == {
        "auth_events": [],
        "content": {},
        "depth": 3,
        "hashes": {"sha256": "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"},
        "origin": "domain",
        "origin_server_ts": 1000000,
        "prev_events": [],
        "room_id": "!x:domain",
        "sender": "@a:domain",
        "signatures": {
            "domain": {
                "ed25519:1": "KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5"
                "KLjAWbOoMszkwsQma+lYAg"
            }
        },
        "type": "X",
        "unsigned": {"age_ts": 1000000},
    }


# Rooms v1-v10 share the top-level keys redaction keeps, and for these event types the
# content keys: the vectors hold for every one of them. The second vector carries a
# "$0:domain" event_id, the form of rooms v1-v2, where it is the event's ID.
PRE_V11 = [rv for rv in KNOWN_ROOM_VERSIONS.values() if not rv.updated_redaction_rules]


@pytest.mark.parametrize("rv", PRE_V11)
def test_sign_minimal_event_every_version_before_v11(rv: RoomVersion) -> None:
    signed = sign_event(add_content_hash(MINIMAL_EVENT, rv), "domain", KEY, rv)
    assert signed == sign_event(add_content_hash(MINIMAL_EVENT), "domain", KEY, ROOM_V10)
    assert signed["signatures"]["domain"]["ed25519:1"].startswith("KxwGjPSDEtvnFgU00fwFz")


@pytest.mark.parametrize("rv", PRE_V11)
def test_sign_event_with_redactable_content(rv: RoomVersion) -> None:
    event = {
        "content": {"body": "Here is the message content"},
        "event_id": "$0:domain",
        "origin": "domain",
        "origin_server_ts": 1000000,
        "type": "m.room.message",
        "room_id": "!r:domain",
        "sender": "@u:domain",
        "signatures": {},
        "unsigned": {"age_ts": 1000000},
    }
    signed = sign_event(add_content_hash(event, rv), "domain", KEY, rv)
    assert signed["hashes"] == {"sha256": "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g"}
    assert signed["signatures"] == {
        "domain": {
            "ed25519:1": "Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu6pNC78FunoD7KNWzqFn241eY"
            "HYMGCA5McEiVPdhzBA"
        }
    }
    assert check_content_hash(signed, rv)
    verify_event_signature(signed, "domain", "ed25519:1", verify_key_of(KEY), rv)
    if rv.event_id_in_pdu:
        assert compute_event_id(signed, rv) == "$0:domain"
        # The event ID is signed (redaction keeps it): another ID breaks the signature.
        with pytest.raises(SignatureError):
            verify_event_signature({**signed, "event_id": "$1:domain"}, "domain", "ed25519:1",
                                   verify_key_of(KEY), rv)


def test_v1_to_v5_sign_floats_and_big_integers_v6_refuses_them() -> None:
    """Rooms v1-v5 do not hold events to canonical JSON's number rules; their signatures
    cover the numbers as the canonicaljson library writes them."""
    event = add_content_hash({**MINIMAL_EVENT, "content": {"f": 50.57, "big": 2**60}}, ROOM_V1)
    for rv in (ROOM_V1, ROOM_V5):
        signed = sign_event(event, "domain", KEY, rv)
        verify_event_signature(signed, "domain", "ed25519:1", verify_key_of(KEY), rv)
        pl = {**signed, "type": "m.room.power_levels", "state_key": "",
              "content": {"ban": 50.57}}
        signed_pl = sign_event(add_content_hash(pl, rv), "domain", KEY, rv)  # kept by redaction
        verify_event_signature(signed_pl, "domain", "ed25519:1", verify_key_of(KEY), rv)
        with pytest.raises(SignatureError):
            verify_event_signature({**signed_pl, "content": {"ban": 50.58}}, "domain",
                                   "ed25519:1", verify_key_of(KEY), rv)
    with pytest.raises(SignatureError):
        sign_event({**MINIMAL_EVENT, "content": {}, "depth": 2**60}, "domain", KEY, ROOM_V6)


def test_sign_json_does_not_mutate_and_keeps_other_signatures() -> None:
    obj = {"a": 1, "signatures": {"other": {"ed25519:x": "sig"}}, "unsigned": {"u": 1}}
    before = copy.deepcopy(obj)
    signed = sign_json(obj, "domain", KEY)
    assert obj == before
    assert signed["signatures"]["other"] == {"ed25519:x": "sig"}
    assert signed["unsigned"] == {"u": 1}
    verify_json(signed, "domain", "ed25519:1", verify_key_of(KEY))


def test_sign_json_refuses_floats() -> None:
    with pytest.raises(SignatureError):
        sign_json({"a": 1.5}, "domain", KEY)


def test_verify_json_failures() -> None:
    signed = sign_json({"a": 1}, "domain", KEY)
    vk = verify_key_of(KEY)
    with pytest.raises(SignatureError):
        verify_json({**signed, "a": 2}, "domain", "ed25519:1", vk)
    with pytest.raises(SignatureError):
        verify_json(signed, "elsewhere", "ed25519:1", vk)
    with pytest.raises(SignatureError):
        verify_json(signed, "domain", "ed25519:2", vk)
    with pytest.raises(SignatureError):
        verify_json({"a": 1, "signatures": {"domain": {"ed25519:1": "!!"}}}, "domain",
                    "ed25519:1", vk)
    with pytest.raises(SignatureError):
        verify_json({"a": 1}, "domain", "ed25519:1", vk)
    other = generate_signing_key("1")
    with pytest.raises(SignatureError):
        verify_json(signed, "domain", "ed25519:1", verify_key_of(other))
    # unsigned is not covered by the signature
    verify_json({**signed, "unsigned": {"age": 5}}, "domain", "ed25519:1", vk)


@pytest.mark.parametrize("rv", [ROOM_V10, ROOM_V11, ROOM_V12])
def test_event_signature_survives_redaction(rv: object) -> None:
    from homeserver.protocol.redaction import redact_event
    from homeserver.protocol.room_versions import RoomVersion

    assert isinstance(rv, RoomVersion)
    event = add_content_hash({**MINIMAL_EVENT, "content": {"body": "secret"}})
    signed = sign_event(event, "domain", KEY, rv)
    vk = verify_key_of(KEY)
    verify_event_signature(signed, "domain", "ed25519:1", vk, rv)
    verify_event_signature(redact_event(signed, rv), "domain", "ed25519:1", vk, rv)
    # Tampering with a hash-protected essential key breaks the signature.
    with pytest.raises(SignatureError):
        verify_event_signature({**signed, "depth": 4}, "domain", "ed25519:1", vk, rv)
    # Tampering with content breaks the content hash (not the signature).
    tampered = {**signed, "content": {"body": "changed"}}
    verify_event_signature(tampered, "domain", "ed25519:1", vk, rv)
    assert not check_content_hash(tampered)


def test_sign_event_keeps_other_servers_signatures() -> None:
    event = add_content_hash({**MINIMAL_EVENT, "signatures": {"other": {"ed25519:o": "x"}}})
    signed = sign_event(event, "domain", KEY, ROOM_V11)
    assert signed["signatures"]["other"] == {"ed25519:o": "x"}
    assert "ed25519:1" in signed["signatures"]["domain"]


def test_key_file_round_trip() -> None:
    keys = [KEY, generate_signing_key("a_bcd")]
    text = write_signing_keys(keys)
    assert text.splitlines()[0] == f"ed25519 1 {encode_signing_key_base64(KEY)}"
    again = read_signing_keys(text + "\n")
    assert [key_id(k) for k in again] == ["ed25519:1", "ed25519:a_bcd"]
    assert [encode_signing_key_base64(k) for k in again] == [
        encode_signing_key_base64(k) for k in keys
    ]


def test_verify_key_base64_round_trip() -> None:
    vk = decode_verify_key_base64("ed25519", "1", verify_key_base64(KEY))
    verify_json(sign_json({"x": 1}, "domain", KEY), "domain", "ed25519:1", vk)
