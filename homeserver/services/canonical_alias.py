"""Which aliases of an `m.room.canonical_alias` a client sends must be checked, and their form.

room_state.yaml: a canonical alias event whose aliases have invalid syntax is refused with
400 M_INVALID_PARAM, one whose aliases do not point to the room with 400 M_BAD_ALIAS. As in
Synapse, only what the event adds is checked (an `alias` other than the current one, the
`alt_aliases` not among the current ones): an alias that stopped pointing to the room since it
was published does not stop the room's admins from editing the rest of the event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeserver.errors import invalid_param
from homeserver.protocol.identifiers import is_valid_room_alias

CANONICAL_ALIAS = "m.room.canonical_alias"


def added_aliases(content: Mapping[str, Any], current: Mapping[str, Any] | None) -> list[str]:
    """The aliases `content` publishes that `current` (the event it replaces) did not, each
    checked for its form; M_INVALID_PARAM for a malformed alias or `alt_aliases`."""
    before = current or {}
    added: list[str] = []
    alias = content.get("alias")
    if alias is not None and alias != "":
        _check_form(alias, "alias")
        if alias != before.get("alias"):
            added.append(alias)
    alt_aliases = content.get("alt_aliases", [])
    if not isinstance(alt_aliases, list):
        raise invalid_param("'alt_aliases' must be a list of room aliases")
    previous = before.get("alt_aliases")
    known = {a for a in previous if isinstance(a, str)} if isinstance(previous, list) else set()
    for alt in alt_aliases:
        _check_form(alt, "alt_aliases")
        if alt not in known and alt not in added:
            added.append(alt)
    return added


def _check_form(alias: object, field: str) -> None:
    if not isinstance(alias, str) or not is_valid_room_alias(alias):
        raise invalid_param(f"{alias!r} in '{field}' is not a room alias")
