"""Restricted rooms, the resident server's side: client-server-api.md "Restricted rooms",
server-server-api.md "Restricted rooms" and the `restricted` (rooms v8+) and
`knock_restricted` (rooms v10+) join rules.

A join of a restricted room by someone neither invited nor joined must name, in
`join_authorised_via_users_server`, a joined user who may invite, and carry the signature of
that user's server (auth rule 4.3.5 checks both). The server that signs decides whom to name:
only when the joining user is joined to one of the rooms the rule's `allow` list names (type
`m.room_membership`). A client never names the authoriser itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from homeserver.protocol.power_levels import required_level, user_power_level
from homeserver.protocol.room_versions import RoomVersion

AUTHORISER = "join_authorised_via_users_server"


def is_restricted(join_rules_content: Mapping[str, Any], room_version: RoomVersion) -> bool:
    """Whether the room's join rule admits members of other rooms (through an authoriser)."""
    rule = join_rules_content.get("join_rule")
    return (rule == "restricted" and room_version.restricted_join_rule) or (
        rule == "knock_restricted" and room_version.knock_restricted_join_rule
    )


def allowed_rooms(join_rules_content: Mapping[str, Any]) -> list[str]:
    """The rooms whose joined members may join (the `m.room_membership` entries of `allow`;
    entries of other types are ignored, as the spec says)."""
    allow = join_rules_content.get("allow")
    return [
        entry["room_id"] for entry in (allow if isinstance(allow, list) else [])
        if isinstance(entry, Mapping) and entry.get("type") == "m.room_membership"
        and isinstance(entry.get("room_id"), str)
    ]


def may_authorise(
    joined: Iterable[str], power_levels_content: Mapping[str, Any] | None,
    create: Mapping[str, Any], room_version: RoomVersion,
) -> list[str]:
    """The joined users whose power level reaches the invite level, sorted (so that a server
    names the same one each time)."""
    needed = required_level(power_levels_content, "invite")
    return [
        user_id for user_id in sorted(joined)
        if user_power_level(user_id, power_levels_content, create, room_version) >= needed
    ]
