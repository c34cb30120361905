"""The redaction algorithm: which keys of an event survive a redaction.

Implements rooms/fragments/v1-redactions.md (room versions 1-5), v6-redactions.md (6-7),
the list in rooms/v8.md (8), v9-redactions.md (9-10) and v11-redactions.md (11-12). Each
older list is the next one minus a few keys: v1 also keeps m.room.aliases' ``aliases``, v8
added m.room.join_rules' ``allow``, v9 m.room.member's ``join_authorised_via_users_server``.
Redaction is also the first step
of signing and of the reference hash (server-server "Signing Events"), so getting a single
key wrong here changes event IDs and breaks signatures with every other server.

Everything not listed is dropped, including ``unsigned``: the spec's key lists do not
contain it, so a redacted event carries no unsigned data (servers add
``unsigned.redacted_because`` again when serving the event to clients).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from homeserver.protocol.canonical_json import encode_canonical_json
from homeserver.protocol.room_versions import RedactionRules, RoomVersion

_TOP_LEVEL_V1 = frozenset(
    {
        "event_id",
        "type",
        "room_id",
        "sender",
        "state_key",
        "content",
        "hashes",
        "signatures",
        "depth",
        "prev_events",
        "prev_state",
        "auth_events",
        "origin",
        "origin_server_ts",
        "membership",
    }
)

# v1-v10 share one top-level list; v11 stops protecting origin, membership and prev_state.
_TOP_LEVEL_V11 = _TOP_LEVEL_V1 - {"origin", "membership", "prev_state"}

_CONTENT_V9: dict[str, frozenset[str]] = {
    "m.room.member": frozenset({"membership", "join_authorised_via_users_server"}),
    "m.room.create": frozenset({"creator"}),
    "m.room.join_rules": frozenset({"join_rule", "allow"}),
    "m.room.power_levels": frozenset(
        {"ban", "events", "events_default", "kick", "redact", "state_default", "users",
         "users_default"}
    ),
    "m.room.history_visibility": frozenset({"history_visibility"}),
}

_CONTENT_V8 = {**_CONTENT_V9, "m.room.member": frozenset({"membership"})}

_CONTENT_V6 = {**_CONTENT_V8, "m.room.join_rules": frozenset({"join_rule"})}

_CONTENT_V1 = {**_CONTENT_V6, "m.room.aliases": frozenset({"aliases"})}

_CONTENT_V11: dict[str, frozenset[str]] = {
    **_CONTENT_V9,
    # m.room.create keeps *all* content in v11; handled specially below.
    "m.room.power_levels": _CONTENT_V9["m.room.power_levels"] | {"invite"},
    "m.room.redaction": frozenset({"redacts"}),
}

_CONTENT_KEYS: dict[RedactionRules, dict[str, frozenset[str]]] = {
    "v1": _CONTENT_V1, "v6": _CONTENT_V6, "v8": _CONTENT_V8, "v9": _CONTENT_V9,
    "v11": _CONTENT_V11,
}


def redact_event(event: Mapping[str, Any], room_version: RoomVersion) -> dict[str, Any]:
    """Return a new, redacted copy of ``event`` (the input is never modified)."""
    v11 = room_version.updated_redaction_rules
    top_level = _TOP_LEVEL_V11 if v11 else _TOP_LEVEL_V1
    redacted: dict[str, Any] = {
        k: copy.deepcopy(v) for k, v in event.items() if k in top_level and k != "content"
    }

    event_type = event.get("type")
    content = event.get("content")
    if not isinstance(content, Mapping):
        content = {}
    new_content: dict[str, Any]
    if v11 and event_type == "m.room.create":
        new_content = copy.deepcopy(dict(content))
    else:
        allowed = _CONTENT_KEYS[room_version.redaction_rules].get(str(event_type), frozenset())
        new_content = {k: copy.deepcopy(v) for k, v in content.items() if k in allowed}
        if v11 and event_type == "m.room.member":
            # v11: third_party_invite "is no longer redacted, *but* will only contain the
            # `signed` key after redaction" (v11 client considerations).
            tpi = content.get("third_party_invite")
            if isinstance(tpi, Mapping):
                kept = {"signed": copy.deepcopy(tpi["signed"])} if "signed" in tpi else {}
                new_content["third_party_invite"] = kept
    if "content" in event or new_content:
        redacted["content"] = new_content
    return redacted


def redacted_json(event: Mapping[str, Any], room_version: RoomVersion) -> str:
    """The event's redacted form as the database keeps events: canonical JSON under its
    version's rules (rooms v1-v5 admit floats and big integers, which stay)."""
    return encode_canonical_json(
        redact_event(event, room_version), strict=room_version.strict_canonical_json
    ).decode()
