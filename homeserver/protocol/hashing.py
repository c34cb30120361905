"""Content hashes, reference hashes, event IDs and (room v12) room IDs.

Implements server-server-api.md "Calculating the content hash for an event" and
"Calculating the reference hash for an event", the event IDs of rooms/fragments/
v1-event-ids.md (rooms v1-v2: ``$opaque:server``, chosen by the sending server and carried in
the PDU's ``event_id``), rooms/v3.md (``$`` + standard unpadded base64 of the reference hash)
and v4-event-ids.md (the same in URL-safe base64), and rooms/v12.md / appendices "Room IDs"
(the room ID is the create event's ID with the sigil ``!`` instead of ``$``).

The reference hash covers the *redacted* event without ``signatures`` and ``unsigned``: so
every key the version's redaction keeps, including ``hashes`` (the content hash, through which
it covers the full content) and, in v1-v2, the ``event_id`` itself. In v1-v2 it is not the
event's ID but what ``prev_events``/``auth_events`` pair with each ID (``event_refs``).

Functions taking a ``room_version`` hash with its canonical JSON rules (v1-v5 admit floats
and big integers); the content hash functions take it as an option and are strict without.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from unpaddedbase64 import decode_base64, encode_base64

from homeserver.protocol.canonical_json import encode_canonical_json
from homeserver.protocol.errors import InvalidEventError
from homeserver.protocol.identifiers import EventID, RoomID, is_legacy_event_id
from homeserver.protocol.redaction import redact_event
from homeserver.protocol.room_versions import RoomVersion


def _strict(room_version: RoomVersion | None) -> bool:
    return room_version is None or room_version.strict_canonical_json


def _content_hash_bytes(event: Mapping[str, Any], room_version: RoomVersion | None) -> bytes:
    # unsigned changes in transit, signatures depend on the hash, and hashes may hold other
    # algorithms' outputs: none of them may be covered by the content hash.
    stripped = {k: v for k, v in event.items() if k not in ("unsigned", "signatures", "hashes")}
    return hashlib.sha256(encode_canonical_json(stripped, strict=_strict(room_version))).digest()


def compute_content_hash(
    event: Mapping[str, Any], room_version: RoomVersion | None = None
) -> str:
    """The sha256 content hash of ``event`` as unpadded standard base64."""
    return encode_base64(_content_hash_bytes(event, room_version))


def add_content_hash(
    event: Mapping[str, Any], room_version: RoomVersion | None = None
) -> dict[str, Any]:
    """Return a copy of ``event`` with ``hashes.sha256`` set (other hash keys are kept)."""
    out = dict(event)
    hashes = dict(event.get("hashes") or {})
    hashes["sha256"] = compute_content_hash(event, room_version)
    out["hashes"] = hashes
    return out


def check_content_hash(
    event: Mapping[str, Any], room_version: RoomVersion | None = None
) -> bool:
    """True if ``hashes.sha256`` matches the event; False if missing, malformed or wrong."""
    hashes = event.get("hashes")
    if not isinstance(hashes, Mapping):
        return False
    claimed = hashes.get("sha256")
    if not isinstance(claimed, str):
        return False
    try:
        claimed_bytes = decode_base64(claimed)
    except Exception:  # binascii.Error and friends: a bad encoding is just a mismatch
        return False
    return hmac.compare_digest(claimed_bytes, _content_hash_bytes(event, room_version))


def compute_reference_hash(event: Mapping[str, Any], room_version: RoomVersion) -> bytes:
    """sha256 over the canonical JSON of the redacted event minus signatures and unsigned."""
    redacted = redact_event(event, room_version)
    redacted.pop("signatures", None)
    redacted.pop("unsigned", None)
    return hashlib.sha256(
        encode_canonical_json(redacted, strict=room_version.strict_canonical_json)
    ).digest()


def encode_urlsafe_base64(data: bytes) -> str:
    """URL-safe unpadded base64 (appendices "URL-safe unpadded Base64")."""
    return encode_base64(data, urlsafe=True)


def compute_event_id(event: Mapping[str, Any], room_version: RoomVersion) -> EventID:
    """The ID of ``event``: v4+ ``$`` + URL-safe unpadded base64 of the reference hash, v3
    the same in standard base64; v1-v2 the ``event_id`` the PDU carries (nothing to compute:
    raises :class:`InvalidEventError` if it has none or not of the ``$opaque:server`` form)."""
    if room_version.event_id_format == "v1":
        event_id = event.get("event_id")
        if not isinstance(event_id, str) or not is_legacy_event_id(event_id):
            raise InvalidEventError("a room v1/v2 event carries its event_id ($opaque:server)")
        return EventID(event_id)
    reference = compute_reference_hash(event, room_version)
    if room_version.event_id_format == "v3":
        return EventID("$" + encode_base64(reference))
    return EventID("$" + encode_urlsafe_base64(reference))


def compute_room_id(create_event: Mapping[str, Any], room_version: RoomVersion) -> RoomID:
    """Room v12: the create event's event ID with the sigil ``!`` instead of ``$``."""
    if not room_version.room_id_from_create_event:
        raise ValueError(f"room version {room_version.identifier} does not hash room IDs")
    return RoomID("!" + compute_event_id(create_event, room_version)[1:])


def create_event_id(room_id: str) -> str:
    """The ID of a room version 12 room's create event: the room ID is that event's reference
    hash with "!" for "$" (rooms/v12.md), so the one can be read off the other."""
    return "$" + room_id[1:]
