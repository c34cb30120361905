"""Power levels: who may do what, and the defaults a new room starts with.

Implements the semantics of the ``m.room.power_levels`` event schema (defaults when a key or
the whole event is missing), server-server "Definitions" (required power level, invite/kick/
ban/redact levels), rooms/v12.md "room creators have infinitely high power level", and the
initial power levels of client-server ``POST /createRoom``.

Power levels are ``int``, except that a v12 room creator's level is ``math.inf``; callers
only ever compare levels, so the mixed type is safe. Rooms v1-v9 may spell a level as a
string and v1-v5 as a float (rooms fragments v1-stringy-power-levels, v1-floaty-power-levels):
:func:`parse_level` reads every spelling, whichever version admits it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from homeserver.protocol.identifiers import is_valid_user_id
from homeserver.protocol.room_versions import RoomVersion

PowerLevel = int | float

DEFAULT_USERS_DEFAULT = 0
DEFAULT_EVENTS_DEFAULT = 0
DEFAULT_STATE_DEFAULT = 50
DEFAULT_BAN = 50
DEFAULT_KICK = 50
DEFAULT_REDACT = 50
DEFAULT_INVITE = 0
DEFAULT_NOTIFICATION_ROOM = 50
# "If the room contains no m.room.power_levels event, the room's creator has a power level
# of 100, and all other users have a power level of 0."
CREATOR_LEVEL_WITHOUT_POWER_LEVELS = 100

LEVEL_DEFAULTS: dict[str, int] = {
    "users_default": DEFAULT_USERS_DEFAULT,
    "events_default": DEFAULT_EVENTS_DEFAULT,
    "state_default": DEFAULT_STATE_DEFAULT,
    "ban": DEFAULT_BAN,
    "kick": DEFAULT_KICK,
    "redact": DEFAULT_REDACT,
    "invite": DEFAULT_INVITE,
}


# v1-stringy-power-levels: "a single base 10 integer ... optionally with any number of leading
# zeroes", "optionally prefixed with a single - or +", surrounded by any whitespace.
_LEVEL_STRING_RE = re.compile(r"[+-]?[0-9]+")


def parse_level(value: object) -> int | None:
    """The level ``value`` spells, or None when it spells none.

    Integers are themselves; strings of a base-10 integer (v1-v9) their integer; finite floats
    (v1-v5) are truncated at the decimal point (``50.57`` is 50). Which spellings a version
    admits is decided by the auth rules (``power_levels_rules``), which refuse the others, so
    reading is the same for every version.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip()
        if _LEVEL_STRING_RE.fullmatch(text) is None:
            return None
        try:
            return int(text)
        except ValueError:  # more digits than Python converts (sys.int_info)
            return None
    return None


def _as_int(value: object, default: int) -> int:
    # A value that spells no level can only come from a malformed caller-built dict (the auth
    # rules refused such power levels): fall back to the default.
    level = parse_level(value)
    return default if level is None else level


def creators(create_event: Mapping[str, Any], room_version: RoomVersion) -> set[str]:
    """The room creators: v12 adds ``additional_creators``; v11 uses the sender; v10 content.

    v10 create events must carry ``content.creator`` (auth rule 1.4); v11+ use ``sender``.
    """
    content = create_event.get("content")
    if not isinstance(content, Mapping):
        content = {}
    sender = create_event.get("sender")
    if not room_version.implicit_room_creator:
        creator = content.get("creator")
        return {creator} if isinstance(creator, str) else set()
    result = {sender} if isinstance(sender, str) else set()
    if room_version.additional_creators:
        extra = content.get("additional_creators")
        if isinstance(extra, list):
            result.update(u for u in extra if isinstance(u, str))
    return result


def user_power_level(
    user_id: str,
    power_levels_content: Mapping[str, Any] | None,
    create_event: Mapping[str, Any],
    room_version: RoomVersion,
) -> PowerLevel:
    """The power level of ``user_id`` given the current power levels (or None) and create."""
    room_creators = creators(create_event, room_version)
    if room_version.privileged_creators and user_id in room_creators:
        return math.inf
    if power_levels_content is None:
        return CREATOR_LEVEL_WITHOUT_POWER_LEVELS if user_id in room_creators else 0
    users = power_levels_content.get("users")
    users_default = _as_int(power_levels_content.get("users_default"), DEFAULT_USERS_DEFAULT)
    if isinstance(users, Mapping) and user_id in users:
        return _as_int(users[user_id], users_default)
    return users_default


def required_level(power_levels_content: Mapping[str, Any] | None, key: str) -> int:
    """The level named ``key`` (invite, kick, ban, redact, *_default) with spec defaults."""
    default = LEVEL_DEFAULTS[key]
    if power_levels_content is None:
        return default
    return _as_int(power_levels_content.get(key), default)


def event_power_level(
    event_type: str, state_key: str | None, pl_content: Mapping[str, Any] | None
) -> int:
    """The *required power level* to send an event of ``event_type`` (state or not)."""
    default_key = "state_default" if state_key is not None else "events_default"
    default = required_level(pl_content, default_key)
    if pl_content is None:
        return default
    events = pl_content.get("events")
    if isinstance(events, Mapping) and event_type in events:
        return _as_int(events[event_type], default)
    return default


def notification_power_level(pl_content: Mapping[str, Any] | None, key: str = "room") -> int:
    """The level needed to trigger a notification type (``room`` defaults to 50)."""
    default = DEFAULT_NOTIFICATION_ROOM if key == "room" else 50
    if pl_content is None:
        return default
    notifications = pl_content.get("notifications")
    if isinstance(notifications, Mapping):
        return _as_int(notifications.get(key), default)
    return default


def default_power_levels_content(
    creator_user_id: str,
    room_version: RoomVersion,
    preset: str | None,
    *,
    invitees: Sequence[str] = (),
) -> dict[str, Any]:
    """The ``m.room.power_levels`` content ``/createRoom`` sends before any override.

    The spec fixes only part of this (createRoom step 3 and the power-levels schema):
    - rooms v1-11 list the creator with 100; v12 creators are not listed (infinite power);
    - v12 needs ``m.room.tombstone`` explicitly above ``state_default`` (150 in the example);
    - ``trusted_private_chat`` gives invitees the creator's level (v12: they become
      additional creators instead, which the caller puts in the create event).
    The remaining values are the de-facto ones every homeserver uses. ``invite`` is 0 for the
    private presets (members of an invite-only room invite their friends, which is what the
    spec's own default of 0 says) and 50 for ``public_chat``, where joining is open anyway and
    an invitation is a moderation act.
    """
    v12 = room_version.privileged_creators
    users: dict[str, int] = {}
    if not v12:
        users[creator_user_id] = 100
        if preset == "trusted_private_chat":
            for invitee in invitees:
                if is_valid_user_id(invitee):
                    users[invitee] = 100
    return {
        "users": users,
        "users_default": 0,
        "events": {
            "m.room.name": 50,
            "m.room.power_levels": 100,
            "m.room.history_visibility": 100,
            "m.room.canonical_alias": 50,
            "m.room.avatar": 50,
            "m.room.tombstone": 150 if v12 else 100,
            "m.room.server_acl": 100,
            "m.room.encryption": 100,
        },
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": 50 if preset == "public_chat" else 0,
    }
