"""How a PDU names other events: event IDs per room version, and ``prev_events`` /
``auth_events`` entries.

Implements the ``auth_events``/``prev_events`` of the PDU schemas (server-server
definitions ``pdu_v1`` for rooms v1-v2, ``pdu_v3`` and ``pdu_v4`` onwards) and which event ID
form each version uses (rooms/fragments/v1-event-ids.md, rooms/v3.md, v4-event-ids.md).
In v1-v2 an entry is a pair ``[event_id, {"sha256": <reference hash>}]``: the referenced
event's reference hash in unpadded standard base64 beside its (chosen, not computed) ID, so
that the event pins its parents' exact content. From v3 on the ID *is* that hash and entries
are bare IDs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from unpaddedbase64 import encode_base64

from homeserver.protocol.hashing import compute_reference_hash
from homeserver.protocol.identifiers import is_hash_event_id, is_legacy_event_id, is_v3_event_id
from homeserver.protocol.room_versions import RoomVersion

EventReference = str | list[Any]


def is_event_id_for(event_id: object, room_version: RoomVersion) -> bool:
    """True when ``event_id`` has the form event IDs take in rooms of ``room_version``."""
    if not isinstance(event_id, str):
        return False
    if room_version.event_id_format == "v1":
        return is_legacy_event_id(event_id)
    if room_version.event_id_format == "v3":
        return is_v3_event_id(event_id)
    return is_hash_event_id(event_id)


def event_reference(
    event_id: str, event: Mapping[str, Any], room_version: RoomVersion
) -> EventReference:
    """The ``prev_events``/``auth_events`` entry that names ``event`` (whose ID is
    ``event_id``) in a room of ``room_version``."""
    if not room_version.event_id_in_pdu:
        return event_id
    return [event_id, {"sha256": encode_base64(compute_reference_hash(event, room_version))}]


def is_well_formed_reference(entry: object, room_version: RoomVersion) -> bool:
    """True when ``entry`` is a ``prev_events``/``auth_events`` entry of ``room_version``.

    The hashes of a v1-v2 pair may be empty: the schema asks for ``sha256``, but Synapse
    writes ``{}`` for an event it does not hold as it builds (``add_event_hashes``) and no
    server checks the hash, so an empty object is taken, as Synapse takes it.
    """
    if not room_version.event_id_in_pdu:
        return is_event_id_for(entry, room_version)
    return (
        isinstance(entry, list)
        and len(entry) == 2
        and is_event_id_for(entry[0], room_version)
        and isinstance(entry[1], Mapping)
        and isinstance(entry[1].get("sha256", ""), str)
    )


def referenced_event_ids(entries: object) -> list[str]:
    """The event IDs of a ``prev_events``/``auth_events`` list of any version (bare IDs or
    v1-v2 pairs); entries of neither shape are left out (the event format check refuses
    them first)."""
    if not isinstance(entries, list):
        return []
    ids: list[str] = []
    for entry in entries:
        if isinstance(entry, str):
            ids.append(entry)
        elif isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str):
            ids.append(entry[0])
    return ids
