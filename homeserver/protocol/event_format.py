"""Event format checks: is this a well-formed PDU for its room version?

Implements server-server "Checks performed on receipt of a PDU" step 1 (the event complies
with the event format of its room version: the ``pdu_v1`` schema of rooms v1-v2, which carry
``event_id`` and list ``[event_id, hashes]`` pairs, ``pdu_v3``, ``pdu_v4`` (v4-v5: depth up to
2**63 - 1, numbers not held to canonical JSON), ``pdu_v6`` (v6-v10, canonical JSON),
``pdu_v11`` and ``pdu_v12``) and client-server "Size limits" (the whole
PDU at most 65536 bytes of canonical JSON; sender, room_id, state_key, type and event_id at
most 255 bytes). Failing here means the event is *dropped*, not rejected.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeserver.protocol.canonical_json import MAX_INT, MIN_INT, encode_canonical_json
from homeserver.protocol.errors import CanonicalJSONError, EventTooLargeError, InvalidEventError
from homeserver.protocol.event_refs import (
    is_well_formed_reference,
    referenced_event_ids,
)
from homeserver.protocol.identifiers import (
    MAX_IDENTIFIER_BYTES,
    is_legacy_event_id,
    is_valid_room_id,
    is_valid_user_id,
)
from homeserver.protocol.room_versions import RoomVersion

MAX_PDU_BYTES = 65536
MAX_PREV_EVENTS = 20
MAX_AUTH_EVENTS = 10
MAX_KEY_BYTES = 255
# pdu_v1/v3/v4: depth "must be less than the maximum value for an integer (2^63 - 1)"; from v6
# on canonical JSON bounds it (and every other integer) to 2^53 - 1.
MAX_DEPTH_BEFORE_V6 = 2**63 - 1


def _is_int(value: object, room_version: RoomVersion) -> bool:
    if not isinstance(value, int) or isinstance(value, bool):
        return False
    if room_version.strict_canonical_json:
        return MIN_INT <= value <= MAX_INT
    return -MAX_DEPTH_BEFORE_V6 <= value <= MAX_DEPTH_BEFORE_V6


def _check_short_string(event: Mapping[str, Any], key: str) -> None:
    value = event[key]
    if not isinstance(value, str):
        raise InvalidEventError(f"{key} must be a string")
    if len(value.encode("utf-8", errors="surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidEventError(f"{key} exceeds {MAX_KEY_BYTES} bytes")


def _check_event_id_list(
    event: Mapping[str, Any], key: str, limit: int, room_version: RoomVersion
) -> None:
    value = event.get(key)
    if not isinstance(value, list):
        raise InvalidEventError(f"{key} must be a list of event IDs")
    if len(value) > limit:
        raise InvalidEventError(f"{key} has {len(value)} entries, at most {limit} allowed")
    for item in value:
        if not is_well_formed_reference(item, room_version):
            raise InvalidEventError(f"{key} contains an invalid event reference: {item!r}")
    ids = referenced_event_ids(value)
    if len(set(ids)) != len(ids):
        # An event refers to another at most once; a repeat would also be a second row of
        # the same edge when stored.
        raise InvalidEventError(f"{key} lists an event more than once")


def check_event_format(event: Mapping[str, Any], room_version: RoomVersion) -> None:
    """Raise :class:`InvalidEventError` unless ``event`` is a well-formed PDU."""
    if not isinstance(event, Mapping):
        raise InvalidEventError("event must be a JSON object")
    for key in ("type", "sender", "content", "depth", "origin_server_ts", "hashes",
                "signatures", "auth_events", "prev_events"):
        if key not in event:
            raise InvalidEventError(f"event lacks required key {key!r}")

    _check_short_string(event, "type")
    _check_short_string(event, "sender")
    if not is_valid_user_id(event["sender"]):
        raise InvalidEventError(f"sender is not a valid user ID: {event['sender']!r}")

    is_v12_create = room_version.room_id_from_create_event and event["type"] == "m.room.create"
    if "room_id" in event:
        _check_short_string(event, "room_id")
        if not is_valid_room_id(event["room_id"]):
            raise InvalidEventError(f"room_id is not a valid room ID: {event['room_id']!r}")
    elif not is_v12_create:
        # v12 omits room_id only on m.room.create (its ID *is* the room ID); whether a
        # v12 create that has one is acceptable is auth rule 1.2, not a format question.
        raise InvalidEventError("event lacks required key 'room_id'")

    if "state_key" in event:
        _check_short_string(event, "state_key")
    if room_version.event_id_in_pdu:
        if not isinstance(event.get("event_id"), str) or not is_legacy_event_id(
            event["event_id"]
        ):
            raise InvalidEventError("a room v1/v2 event needs an event_id of $opaque:server")
    elif "event_id" in event:
        # Not part of a v3+ PDU, but if present it is bounded like any event ID.
        _check_short_string(event, "event_id")
        if len(event["event_id"].encode("utf-8", errors="surrogatepass")) > MAX_IDENTIFIER_BYTES:
            raise InvalidEventError("event_id exceeds 255 bytes")

    if not isinstance(event["content"], Mapping):
        raise InvalidEventError("content must be an object")
    if not _is_int(event["depth"], room_version):
        raise InvalidEventError("depth must be an integer in the room version's range")
    if not _is_int(event["origin_server_ts"], room_version):
        raise InvalidEventError("origin_server_ts must be an integer")

    hashes = event["hashes"]
    if not isinstance(hashes, Mapping) or not isinstance(hashes.get("sha256"), str):
        raise InvalidEventError("hashes.sha256 must be a string")
    signatures = event["signatures"]
    if not isinstance(signatures, Mapping) or not all(
        isinstance(v, Mapping) and all(isinstance(s, str) for s in v.values())
        for v in signatures.values()
    ):
        raise InvalidEventError("signatures must map server names to key IDs to strings")
    if "unsigned" in event and not isinstance(event["unsigned"], Mapping):
        raise InvalidEventError("unsigned must be an object")

    _check_event_id_list(event, "prev_events", MAX_PREV_EVENTS, room_version)
    _check_event_id_list(event, "auth_events", MAX_AUTH_EVENTS, room_version)

    if event["type"] == "m.room.redaction":
        redacts = (
            event["content"].get("redacts")
            if room_version.redacts_in_content
            else event.get("redacts")
        )
        if redacts is not None and not isinstance(redacts, str):
            raise InvalidEventError("redacts must be an event ID string")

    try:
        size = len(encode_canonical_json(event, strict=room_version.strict_canonical_json))
    except CanonicalJSONError as e:
        raise InvalidEventError(f"event is not canonical JSON: {e}") from e
    if size > MAX_PDU_BYTES:
        raise EventTooLargeError(f"event is {size} bytes, more than {MAX_PDU_BYTES}")
