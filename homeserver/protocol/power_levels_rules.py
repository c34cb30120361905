"""The ``m.room.power_levels`` authorisation rule (rule 9 of v10/v11, rule 10 of v12).

Implements the power-levels part of rooms/v10.md, v11.md and v12.md "Authorisation rules":
integer-only values (v10+), valid user IDs in ``users``, creators absent from ``users``
(v12), and the "you cannot grant or take away more than you have" comparisons against the
previous power levels. Split out of ``auth_rules`` because it is the one rule with its own
small algorithm.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeserver.protocol.canonical_json import MAX_INT, MIN_INT
from homeserver.protocol.errors import AuthError
from homeserver.protocol.identifiers import is_valid_user_id
from homeserver.protocol.power_levels import PowerLevel
from homeserver.protocol.room_versions import RoomVersion

LEVEL_KEYS = ("users_default", "events_default", "state_default", "ban", "redact", "kick",
              "invite")
_MISSING = object()


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and MIN_INT <= value <= MAX_INT


def _int_map(value: object) -> bool:
    return isinstance(value, Mapping) and all(_is_int(v) for v in value.values())


def _validate(content: Mapping[str, Any], creators: set[str], rv: RoomVersion) -> None:
    if rv.enforce_int_power_levels:
        for key in LEVEL_KEYS:
            if key in content and not _is_int(content[key]):
                raise AuthError(f"rule 9.1: power levels {key} must be an integer")
        for key in ("events", "notifications"):
            if key in content and not _int_map(content[key]):
                raise AuthError(f"rule 9.2: power levels {key} must map to integers")
    # Rule 9.3 says "if the users property is not an object...": we read it, as every
    # implementation does, as applying when the property is present.
    if "users" in content:
        users = content["users"]
        if not isinstance(users, Mapping) or not all(
            isinstance(u, str) and is_valid_user_id(u) and _is_int(v) for u, v in users.items()
        ):
            raise AuthError("rule 9.3: users must map valid user IDs to integers")
        if rv.privileged_creators and any(u in creators for u in users):
            raise AuthError("rule 10.4: room creators cannot be listed in users")


def _too_big(value: object, limit: PowerLevel, *, or_equal: bool = False) -> bool:
    if value is _MISSING or not isinstance(value, int | float) or isinstance(value, bool):
        return False
    return value >= limit if or_equal else value > limit


def _mapping(content: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = content.get(key)
    return value if isinstance(value, Mapping) else {}


def check_power_levels_change(
    event: Mapping[str, Any],
    old_content: Mapping[str, Any] | None,
    sender_level: PowerLevel,
    creators: set[str],
    rv: RoomVersion,
) -> None:
    """Raise :class:`AuthError` unless the new power levels in ``event`` are allowed."""
    new_content = event.get("content")
    if not isinstance(new_content, Mapping):
        raise AuthError("rule 9: power levels content must be an object")
    _validate(new_content, creators, rv)
    if old_content is None:
        return  # rule 9.4: the room's first power levels event

    for key in LEVEL_KEYS:
        old = old_content.get(key, _MISSING)
        new = new_content.get(key, _MISSING)
        if old == new:
            continue
        if _too_big(old, sender_level):
            raise AuthError(f"rule 9.5.1: current {key} is above the sender's level")
        if _too_big(new, sender_level):
            raise AuthError(f"rule 9.5.2: new {key} is above the sender's level")

    for key in ("events", "notifications"):
        old_map, new_map = _mapping(old_content, key), _mapping(new_content, key)
        for name in old_map.keys() | new_map.keys():
            old = old_map.get(name, _MISSING)
            new = new_map.get(name, _MISSING)
            if old == new:
                continue
            # Rule 9.6: changed or removed entries -- the current value must be within reach.
            if _too_big(old, sender_level):
                raise AuthError(f"rule 9.6.1: current {key}.{name} is above the sender's level")
            # Rule 9.7: added or changed entries -- the new value must be within reach.
            if _too_big(new, sender_level):
                raise AuthError(f"rule 9.7.1: new {key}.{name} is above the sender's level")

    sender = event.get("sender")
    old_users, new_users = _mapping(old_content, "users"), _mapping(new_content, "users")
    for user in old_users.keys() | new_users.keys():
        old = old_users.get(user, _MISSING)
        new = new_users.get(user, _MISSING)
        if old == new:
            continue
        # Rule 9.8: others at or above your own level cannot be changed or removed.
        if user != sender and _too_big(old, sender_level, or_equal=True):
            raise AuthError(f"rule 9.8.1: cannot change the level of {user}, at or above yours")
        # Rule 9.9: nobody can be given more than you have.
        if _too_big(new, sender_level):
            raise AuthError(f"rule 9.9.1: cannot raise {user} above your own level")
