"""Building outgoing PDUs and shaping stored PDUs for clients.

Implements the PDU layout of every room version (server-server definitions ``pdu_v1`` to
``pdu_v12``: v1-v2 carry the ``event_id`` the sending server chose and pair each
``prev_events``/``auth_events`` ID with its reference hash, see ``event_refs``),
server-server "Adding hashes and signatures to outgoing events" (content hash, then sign the
redacted event, then the event ID from the reference hash), and the client-server
``ClientEvent`` format including the v11 advice to mirror ``redacts`` between the top level
and ``content`` of ``m.room.redaction`` events.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from signedjson.types import SigningKey

from homeserver.protocol.canonical_json import check_canonical_json
from homeserver.protocol.errors import CanonicalJSONError, InvalidEventError
from homeserver.protocol.event_format import check_event_format
from homeserver.protocol.event_refs import EventReference
from homeserver.protocol.hashing import add_content_hash, compute_event_id
from homeserver.protocol.identifiers import EventID, is_valid_user_id, server_name_of
from homeserver.protocol.room_versions import RoomVersion
from homeserver.protocol.signing import sign_event


def build_event(
    *,
    room_version: RoomVersion,
    room_id: str | None,
    sender: str,
    event_type: str,
    content: dict[str, Any],
    state_key: str | None,
    prev_events: Sequence[EventReference],
    auth_events: Sequence[EventReference],
    depth: int,
    origin_server_ts: int,
    server_name: str,
    signing_key: SigningKey,
    redacts: str | None = None,
    unsigned: dict[str, Any] | None = None,
    event_id: str | None = None,
) -> tuple[EventID, dict[str, Any]]:
    """Assemble, hash and sign a PDU; return ``(event_id, pdu)`` as sent over federation.

    ``prev_events`` and ``auth_events`` are entries as the version spells them
    (``event_refs.event_reference``: bare IDs, or v1-v2 ``[id, hashes]`` pairs). In rooms
    v1-v2 the caller chooses the ``event_id`` (``$opaque:server_name``; the protocol core has
    no randomness) and the PDU carries it; in v3+ the PDU has no ``event_id`` key, the ID is
    derived from the reference hash, and passing one is an error.
    In v12 the create event has no ``room_id``: pass ``room_id=None`` and take the room ID
    from ``hashing.compute_room_id``. Raises ``InvalidEventError`` if the result breaks the
    event format (size limits, bad IDs...).
    """
    is_v12_create = room_version.room_id_from_create_event and event_type == "m.room.create"
    if room_id is None and not is_v12_create:
        raise ValueError("room_id is required except for a room v12 m.room.create")
    if room_id is not None and is_v12_create:
        raise ValueError("a room v12 m.room.create must not have a room_id")
    if (event_id is not None) != room_version.event_id_in_pdu:
        raise ValueError("event_id is given in rooms v1-v2, and only there")

    body = copy.deepcopy(content)
    pdu: dict[str, Any] = {
        "auth_events": list(auth_events),
        "content": body,
        "depth": depth,
        "origin_server_ts": origin_server_ts,
        "prev_events": list(prev_events),
        "sender": sender,
        "type": event_type,
    }
    if room_id is not None:
        pdu["room_id"] = room_id
    if event_id is not None:
        pdu["event_id"] = event_id
    if state_key is not None:
        pdu["state_key"] = state_key
    if redacts is not None:
        # v11 moved `redacts` into content; earlier versions keep it at the top level.
        if room_version.redacts_in_content:
            body["redacts"] = redacts
        else:
            pdu["redacts"] = redacts

    try:
        check_canonical_json(pdu, strict=room_version.strict_canonical_json)
    except CanonicalJSONError as e:
        raise InvalidEventError(f"event is not canonical JSON: {e}") from e
    pdu = add_content_hash(pdu, room_version)
    pdu["signatures"] = {}
    pdu = sign_event(pdu, server_name, signing_key, room_version)
    if unsigned is not None:
        # Not covered by hash nor signature, so it can be attached last.
        pdu["unsigned"] = copy.deepcopy(unsigned)
    check_event_format(pdu, room_version)
    return compute_event_id(pdu, room_version), pdu


def client_event(
    pdu: Mapping[str, Any],
    event_id: str,
    room_id: str,
    unsigned: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The Client-Server ``ClientEvent`` form of a stored PDU.

    Federation-only keys (auth_events, prev_events, hashes, signatures, depth, origin) are
    left out. For ``m.room.redaction`` the ``redacts`` value is given in both places: top
    level for older clients (v11+ rooms) and in ``content`` for newer ones (pre-v11 rooms),
    as rooms/v11.md "Moving the redacts property" recommends.

    The returned event shares `content` with the PDU (copying it for every reader of every
    event was a large share of /sync's time): it is read-only, like the PDU itself.
    """
    content: dict[str, Any] = pdu.get("content") or {}
    out: dict[str, Any] = {
        "content": content,
        "event_id": event_id,
        "origin_server_ts": pdu.get("origin_server_ts"),
        "room_id": room_id,
        "sender": pdu.get("sender"),
        "type": pdu.get("type"),
    }
    if "state_key" in pdu:
        out["state_key"] = pdu["state_key"]
    if pdu.get("type") == "m.room.redaction":
        redacts = pdu.get("redacts", content.get("redacts"))
        if isinstance(redacts, str):
            out["redacts"] = redacts
            out["content"] = {**content, "redacts": content.get("redacts", redacts)}
    if unsigned is not None:
        out["unsigned"] = dict(unsigned)
    return out


def membership_servers(member_pdu: Mapping[str, Any]) -> list[str]:
    """The servers a user's membership event of a room this server is not in points to, to
    ask about the room: its sender's (an inviter's), then those of the senders of the stripped
    state it carries (a knock is the user's own, so the room's servers are known from its
    `knock_room_state`, kept as `unsigned.invite_room_state`)."""
    unsigned = member_pdu.get("unsigned")
    stripped = unsigned.get("invite_room_state") if isinstance(unsigned, dict) else None
    events = [member_pdu, *(stripped if isinstance(stripped, list) else [])]
    senders = (e.get("sender") for e in events if isinstance(e, Mapping))
    return list(dict.fromkeys(
        server_name_of(s) for s in senders if isinstance(s, str) and is_valid_user_id(s)
    ))
