"""The ``m.room.power_levels`` authorisation rule (rule 10 of v1-v5, 9 of v6-v11, 10 of v12).

Implements the power-levels part of rooms/v1.md ... v12.md "Authorisation rules": the shape of
the values (v10+ integers only; v1-v9 also strings of an integer, v1-v5 also floats, rooms
fragments v1-stringy-power-levels and v1-floaty-power-levels), valid user IDs in ``users``,
creators absent from ``users`` (v12), and the "you cannot grant or take away more than you
have" comparisons against the previous power levels (``notifications`` entries from v6 on).
Split out of ``auth_rules`` because it is the one rule with its own small algorithm.

Rules 9.1 and 9.2 exist from v10 on; before, only ``users`` is checked by the spec's words.
We refuse malformed values of the other keys the rules compare in every version (the levels
of 9.5, ``events`` and, from v6, ``notifications``), since the spec's formats leave nothing
else to compare with; Synapse, which turns such values with ``int()``, fails on them too.
Levels are compared by the value they spell, so ``"50"`` for ``50`` is no change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeserver.protocol.canonical_json import MAX_INT, MIN_INT
from homeserver.protocol.errors import AuthError
from homeserver.protocol.identifiers import is_valid_user_id
from homeserver.protocol.power_levels import PowerLevel, parse_level
from homeserver.protocol.room_versions import RoomVersion

LEVEL_KEYS = ("users_default", "events_default", "state_default", "ban", "redact", "kick",
              "invite")


def _is_level(value: object, rv: RoomVersion) -> bool:
    if rv.enforce_int_power_levels:
        return (
            isinstance(value, int) and not isinstance(value, bool)
            and MIN_INT <= value <= MAX_INT
        )
    if isinstance(value, float) and rv.strict_canonical_json:
        return False  # v6-v9: strings yes, floats no (canonical JSON has none)
    return parse_level(value) is not None


def _level_map(value: object, rv: RoomVersion) -> bool:
    return isinstance(value, Mapping) and all(_is_level(v, rv) for v in value.values())


def _compared_maps(rv: RoomVersion) -> tuple[str, ...]:
    # v6 (MSC2209) guards `notifications` entries like `events` entries.
    return ("events", "notifications") if rv.limit_notifications_power_levels else ("events",)


def _validate(content: Mapping[str, Any], creators: set[str], rv: RoomVersion) -> None:
    what = "an integer" if rv.enforce_int_power_levels else "an integer or a string of one"
    for key in LEVEL_KEYS:
        if key in content and not _is_level(content[key], rv):
            raise AuthError(f"rule 9.1: power levels {key} must be {what}")
    for key in _compared_maps(rv):
        if key in content and not _level_map(content[key], rv):
            raise AuthError(f"rule 9.2: power levels {key} must map to {what}s")
    # Rule 9.3 says "if the users property is not an object...": we read it, as every
    # implementation does, as applying when the property is present.
    if "users" in content:
        users = content["users"]
        if not isinstance(users, Mapping) or not all(
            isinstance(u, str) and is_valid_user_id(u) and _is_level(v, rv)
            for u, v in users.items()
        ):
            raise AuthError(f"rule 9.3: users must map valid user IDs to {what}s")
        if rv.privileged_creators and any(u in creators for u in users):
            raise AuthError("rule 10.4: room creators cannot be listed in users")


def _level(content: Mapping[str, Any], key: str) -> int | None:
    """The level at ``key``, None when absent (or, in old content, unreadable)."""
    return parse_level(content[key]) if key in content else None


def _too_big(value: int | None, limit: PowerLevel, *, or_equal: bool = False) -> bool:
    if value is None:
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
        old, new = _level(old_content, key), _level(new_content, key)
        if old == new:
            continue
        if _too_big(old, sender_level):
            raise AuthError(f"rule 9.5.1: current {key} is above the sender's level")
        if _too_big(new, sender_level):
            raise AuthError(f"rule 9.5.2: new {key} is above the sender's level")

    for key in _compared_maps(rv):
        old_map, new_map = _mapping(old_content, key), _mapping(new_content, key)
        for name in old_map.keys() | new_map.keys():
            old, new = _level(old_map, name), _level(new_map, name)
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
        old, new = _level(old_users, user), _level(new_users, user)
        if old == new:
            continue
        # Rule 9.8: others at or above your own level cannot be changed or removed.
        if user != sender and _too_big(old, sender_level, or_equal=True):
            raise AuthError(f"rule 9.8.1: cannot change the level of {user}, at or above yours")
        # Rule 9.9: nobody can be given more than you have.
        if _too_big(new, sender_level):
            raise AuthError(f"rule 9.9.1: cannot raise {user} above your own level")
