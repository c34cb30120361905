"""Content hashes, reference hashes, event IDs and (room v12) room IDs.

Implements server-server-api.md "Calculating the content hash for an event" and
"Calculating the reference hash for an event", rooms/fragments/v4-event-ids.md (event ID =
URL-safe unpadded base64 of the reference hash) and rooms/v12.md / appendices "Room IDs"
(the room ID is the create event's ID with the sigil ``!`` instead of ``$``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from unpaddedbase64 import decode_base64, encode_base64

from homeserver.protocol.canonical_json import encode_canonical_json
from homeserver.protocol.identifiers import EventID, RoomID
from homeserver.protocol.redaction import redact_event
from homeserver.protocol.room_versions import RoomVersion


def _content_hash_bytes(event: Mapping[str, Any]) -> bytes:
    # unsigned changes in transit, signatures depend on the hash, and hashes may hold other
    # algorithms' outputs: none of them may be covered by the content hash.
    stripped = {k: v for k, v in event.items() if k not in ("unsigned", "signatures", "hashes")}
    return hashlib.sha256(encode_canonical_json(stripped)).digest()


def compute_content_hash(event: Mapping[str, Any]) -> str:
    """The sha256 content hash of ``event`` as unpadded standard base64."""
    return encode_base64(_content_hash_bytes(event))


def add_content_hash(event: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``event`` with ``hashes.sha256`` set (other hash keys are kept)."""
    out = dict(event)
    hashes = dict(event.get("hashes") or {})
    hashes["sha256"] = compute_content_hash(event)
    out["hashes"] = hashes
    return out


def check_content_hash(event: Mapping[str, Any]) -> bool:
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
    return hmac.compare_digest(claimed_bytes, _content_hash_bytes(event))


def compute_reference_hash(event: Mapping[str, Any], room_version: RoomVersion) -> bytes:
    """sha256 over the canonical JSON of the redacted event minus signatures and unsigned."""
    redacted = redact_event(event, room_version)
    redacted.pop("signatures", None)
    redacted.pop("unsigned", None)
    return hashlib.sha256(encode_canonical_json(redacted)).digest()


def encode_urlsafe_base64(data: bytes) -> str:
    """URL-safe unpadded base64 (appendices "URL-safe unpadded Base64")."""
    return encode_base64(data, urlsafe=True)


def compute_event_id(event: Mapping[str, Any], room_version: RoomVersion) -> EventID:
    """``$`` + URL-safe unpadded base64 of the reference hash (room versions 4+)."""
    return EventID("$" + encode_urlsafe_base64(compute_reference_hash(event, room_version)))


def compute_room_id(create_event: Mapping[str, Any], room_version: RoomVersion) -> RoomID:
    """Room v12: the create event's event ID with the sigil ``!`` instead of ``$``."""
    if not room_version.room_id_from_create_event:
        raise ValueError(f"room version {room_version.identifier} does not hash room IDs")
    return RoomID("!" + compute_event_id(create_event, room_version)[1:])


def create_event_id(room_id: str) -> str:
    """The ID of a room version 12 room's create event: the room ID is that event's reference
    hash with "!" for "$" (rooms/v12.md), so the one can be read off the other."""
    return "$" + room_id[1:]
