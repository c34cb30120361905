"""The room's member limit: how many users a room seats, and whether an event would take a
seat too many.

The limit is a state event of this project's namespace, written at creation so that every
server in the room can see it (the auth rules know of no limit); this server's own
`rooms.max_members` caps it. A *seat* is a join or an invite: both count, so that invites
cannot promise more seats than the room has.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeserver.protocol.state_keys import StateKey

MEMBER_LIMIT_TYPE = "org.moot.room.member_limit"
MEMBER_LIMIT: StateKey = (MEMBER_LIMIT_TYPE, "")
SEATED = ("join", "invite")


def takes_seat(pdu: Mapping[str, Any]) -> bool:
    """Whether the event is a join or an invite (a membership that occupies a seat)."""
    return pdu["type"] == "m.room.member" and pdu["content"].get("membership") in SEATED


def room_limit(state: Mapping[StateKey, Mapping[str, Any]], server_max: int) -> int:
    """The room's effective member limit: the lower of its own limit event and `server_max`
    (a limit event that is not a positive integer is ignored)."""
    event = state.get(MEMBER_LIMIT)
    limit = event["content"].get("max_members") if event is not None else None
    if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
        return min(limit, server_max)
    return server_max


def exceeded_limit(
    pdu: Mapping[str, Any], target_membership: str | None, seated: int,
    state: Mapping[StateKey, Mapping[str, Any]], server_max: int,
) -> int | None:
    """The room's limit when `pdu` would seat one user too many (None: it takes no new seat,
    or one is free). `target_membership` is the target's current membership (None: none),
    `seated` how many users the room seats now, `state` holds the room's limit event."""
    if not takes_seat(pdu) or target_membership in SEATED:
        return None
    limit = room_limit(state, server_max)
    return limit if seated >= limit else None
