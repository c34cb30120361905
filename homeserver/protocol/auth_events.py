"""Auth events: which state events an event cites, and checking the list it cites.

Implements server-server-api.md "Auth events selection" and rule 2 of rooms/v1.md ... v11.md
"Authorisation rules" (rule 3 of rooms/v12.md): no duplicate ``(type, state_key)``
entries, only selected types, the create event present (v1-v11) or absent (v12), and no
auth event from another room. Whether an auth event was itself rejected (rule 2.3) is known
only to the caller's storage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from homeserver.protocol.errors import AuthError
from homeserver.protocol.room_versions import RoomVersion
from homeserver.protocol.state_keys import CREATE, JOIN_RULES, POWER_LEVELS, StateKey


def auth_types_for_event(
    event_type: str,
    sender: str,
    state_key: str | None,
    content: Mapping[str, Any],
    room_version: RoomVersion,
) -> list[StateKey]:
    """The state keys whose current events belong in ``auth_events`` ("Auth events selection")."""
    if event_type == "m.room.create":
        return []
    keys: list[StateKey] = []
    if room_version.create_event_in_auth_events:
        keys.append(CREATE)
    keys.append(POWER_LEVELS)
    keys.append(("m.room.member", sender))
    if event_type == "m.room.member" and state_key is not None:
        membership = content.get("membership")
        target: StateKey = ("m.room.member", state_key)
        if target not in keys:
            keys.append(target)
        if membership in ("join", "invite", "knock"):
            keys.append(JOIN_RULES)
        tpi = content.get("third_party_invite")
        if membership == "invite" and isinstance(tpi, Mapping):
            signed = tpi.get("signed")
            token = signed.get("token") if isinstance(signed, Mapping) else None
            if isinstance(token, str):
                keys.append(("m.room.third_party_invite", token))
        via = content.get("join_authorised_via_users_server")
        if membership == "join" and room_version.restricted_join_rule and isinstance(via, str):
            authoriser: StateKey = ("m.room.member", via)
            if authoriser not in keys:
                keys.append(authoriser)
    return keys


def check_auth_events_selection(
    event: Mapping[str, Any],
    auth_events: Sequence[Mapping[str, Any]],
    room_version: RoomVersion,
) -> None:
    """Rule 2 (v12: rule 3): the ``auth_events`` entries themselves (not their rejection)."""
    if event.get("type") == "m.room.create":
        return
    allowed = set(
        auth_types_for_event(
            str(event.get("type")),
            str(event.get("sender")),
            event.get("state_key"),
            event.get("content") or {},
            room_version,
        )
    )
    seen: set[StateKey] = set()
    for auth_event in auth_events:
        key = (str(auth_event.get("type")), str(auth_event.get("state_key")))
        if key in seen:
            raise AuthError(f"rule 2.1: duplicate auth event for {key}")
        seen.add(key)
        if key not in allowed or "state_key" not in auth_event:
            raise AuthError(f"rule 2.2: auth event {key} is not in the auth events selection")
        if room_version.room_id_from_create_event and key == CREATE:
            raise AuthError("rule 3.2: m.room.create must not be an auth event in this version")
        if auth_event.get("room_id") != event.get("room_id"):
            raise AuthError(f"rule 2.5: auth event {key} belongs to another room")
    if room_version.create_event_in_auth_events and CREATE not in seen:
        raise AuthError("rule 2.4: no m.room.create event among the auth events")
