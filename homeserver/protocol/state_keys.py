"""State keys: the `(type, state_key)` pair that names a slot of a room's state, and the slots
every part of the server reads by name, spelled here once."""

from __future__ import annotations

StateKey = tuple[str, str]

CREATE: StateKey = ("m.room.create", "")
POWER_LEVELS: StateKey = ("m.room.power_levels", "")
JOIN_RULES: StateKey = ("m.room.join_rules", "")
ENCRYPTION: StateKey = ("m.room.encryption", "")
GUEST_ACCESS: StateKey = ("m.room.guest_access", "")
NAME: StateKey = ("m.room.name", "")
CANONICAL_ALIAS: StateKey = ("m.room.canonical_alias", "")
