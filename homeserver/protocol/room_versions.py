"""Room versions as data: one frozen record of feature flags per supported version.

Implements the differences between rooms/v10.md, rooms/v11.md and rooms/v12.md (and the
feature matrix in rooms/_index.md). Code elsewhere asks a flag ("does this version take the
creator from the sender?") instead of comparing version strings, so adding a version is a
new record here plus whatever new rule it brings.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

EventIdFormat = Literal["v4"]
RedactionRules = Literal["v9", "v11"]
StateResAlgorithm = Literal["v1", "v2", "v2.1"]


@dataclass(frozen=True, slots=True)
class RoomVersion:
    """The rules a room follows, fixed for its lifetime by ``m.room.create``."""

    identifier: str
    # Every version we support uses v4 event IDs: "$" + URL-safe base64 reference hash.
    event_id_format: EventIdFormat
    # Which redaction algorithm applies (rooms fragments v9-redactions / v11-redactions).
    redaction_rules: RedactionRules
    state_res: StateResAlgorithm
    knock_join_rule: bool
    restricted_join_rule: bool
    knock_restricted_join_rule: bool
    # v10+: power level values must be integers, never strings.
    enforce_int_power_levels: bool
    # v11+: the creator is the create event's sender, content.creator is gone.
    implicit_room_creator: bool
    # v11+: m.room.redaction carries `redacts` inside content instead of at top level.
    redacts_in_content: bool
    # v12: the room ID is the create event's ID with "!" instead of "$".
    room_id_from_create_event: bool
    # v12: m.room.create MUST NOT be selected into auth_events.
    create_event_in_auth_events: bool
    # v12: creators (sender + content.additional_creators) have infinite power.
    privileged_creators: bool
    # v12: m.room.create may carry content.additional_creators.
    additional_creators: bool

    @property
    def updated_redaction_rules(self) -> bool:
        """True when the v11 redaction rules (MSC2176/MSC3821) apply."""
        return self.redaction_rules == "v11"


ROOM_V10 = RoomVersion(
    identifier="10",
    event_id_format="v4",
    redaction_rules="v9",
    state_res="v2",
    knock_join_rule=True,
    restricted_join_rule=True,
    knock_restricted_join_rule=True,
    enforce_int_power_levels=True,
    implicit_room_creator=False,
    redacts_in_content=False,
    room_id_from_create_event=False,
    create_event_in_auth_events=True,
    privileged_creators=False,
    additional_creators=False,
)

# v11: the creator comes from the sender, and redaction rules changed (`redacts` in content).
ROOM_V11 = replace(
    ROOM_V10, identifier="11", redaction_rules="v11", implicit_room_creator=True,
    redacts_in_content=True,
)

# v12: room IDs are the create event's hash, creators have infinite power, state res v2.1.
ROOM_V12 = replace(
    ROOM_V11, identifier="12", state_res="v2.1", room_id_from_create_event=True,
    create_event_in_auth_events=False, privileged_creators=True, additional_creators=True,
)

KNOWN_ROOM_VERSIONS: dict[str, RoomVersion] = {
    v.identifier: v for v in (ROOM_V10, ROOM_V11, ROOM_V12)
}

# rooms/_index.md: "Servers SHOULD use room version 12 as the default".
DEFAULT_ROOM_VERSION = "12"


def get_room_version(identifier: str) -> RoomVersion:
    """Look up a supported room version; raises ``KeyError`` if we do not know it."""
    return KNOWN_ROOM_VERSIONS[identifier]
