"""Room versions as data: one frozen record of feature flags per version.

Implements the differences between rooms/v1.md ... rooms/v12.md (and the feature matrix in
rooms/_index.md). Code elsewhere asks a flag ("does this version take the creator from the
sender?") instead of comparing version strings, so adding a version is a new record here plus
whatever new rule it brings.

:data:`KNOWN_ROOM_VERSIONS` (1-12) are the versions the room engine runs, advertises in
capabilities, creates and joins over federation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

# v1: "$opaque:server", carried in the PDU's `event_id`; v3: "$" + standard unpadded base64
# of the reference hash; v4: the same in URL-safe unpadded base64.
EventIdFormat = Literal["v1", "v3", "v4"]
# Named after the rooms fragments that define them (v1-, v6-, v9-, v11-redactions; v8's list
# is spelled out in rooms/v8.md).
RedactionRules = Literal["v1", "v6", "v8", "v9", "v11"]
StateResAlgorithm = Literal["v1", "v2", "v2.1"]


@dataclass(frozen=True, slots=True)
class RoomVersion:
    """The rules a room follows, fixed for its lifetime by ``m.room.create``."""

    identifier: str
    event_id_format: EventIdFormat
    # Which redaction algorithm applies (see RedactionRules).
    redaction_rules: RedactionRules
    state_res: StateResAlgorithm
    # v5+: a signing key counts only until its valid_until_ts (v5-signing-requirements).
    enforce_key_validity: bool
    # v1-v5: auth rule 4, m.room.aliases is allowed when state_key is the sender's server.
    special_case_aliases_auth: bool
    # v1-v2: auth rule 11, a redaction needs the redact level or the same event ID domain.
    redaction_auth_rule: bool
    # v6+: events MUST be canonical JSON (no floats, integers within +-(2**53 - 1)).
    strict_canonical_json: bool
    # v6+: power levels' `notifications` entries are guarded like `events` entries.
    limit_notifications_power_levels: bool
    knock_join_rule: bool
    restricted_join_rule: bool
    knock_restricted_join_rule: bool
    # v10+: power level values must be integers, never strings (nor, before v6, floats).
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

    @property
    def event_id_in_pdu(self) -> bool:
        """True in rooms v1-v2, whose PDUs carry their ``event_id`` (it is no hash)."""
        return self.event_id_format == "v1"


ROOM_V1 = RoomVersion(
    identifier="1",
    event_id_format="v1",
    redaction_rules="v1",
    state_res="v1",
    enforce_key_validity=False,
    special_case_aliases_auth=True,
    redaction_auth_rule=True,
    strict_canonical_json=False,
    limit_notifications_power_levels=False,
    knock_join_rule=False,
    restricted_join_rule=False,
    knock_restricted_join_rule=False,
    enforce_int_power_levels=False,
    implicit_room_creator=False,
    redacts_in_content=False,
    room_id_from_create_event=False,
    create_event_in_auth_events=True,
    privileged_creators=False,
    additional_creators=False,
)

# v2: state resolution v2, nothing else.
ROOM_V2 = replace(ROOM_V1, identifier="2", state_res="v2")

# v3: event IDs are reference hashes (standard base64), redactions leave the auth rules.
ROOM_V3 = replace(ROOM_V2, identifier="3", event_id_format="v3", redaction_auth_rule=False)

# v4: URL-safe base64 event IDs.
ROOM_V4 = replace(ROOM_V3, identifier="4", event_id_format="v4")

# v5: signing key validity periods are enforced.
ROOM_V5 = replace(ROOM_V4, identifier="5", enforce_key_validity=True)

# v6: no aliases special case (in auth nor redaction), strict canonical JSON, notifications.
ROOM_V6 = replace(
    ROOM_V5, identifier="6", redaction_rules="v6", special_case_aliases_auth=False,
    strict_canonical_json=True, limit_notifications_power_levels=True,
)

# v7: knocking.
ROOM_V7 = replace(ROOM_V6, identifier="7", knock_join_rule=True)

# v8: restricted join rule; redaction keeps m.room.join_rules' `allow`.
ROOM_V8 = replace(ROOM_V7, identifier="8", redaction_rules="v8", restricted_join_rule=True)

# v9: redaction keeps m.room.member's `join_authorised_via_users_server`.
ROOM_V9 = replace(ROOM_V8, identifier="9", redaction_rules="v9")

# v10: knock_restricted, and integer-only power levels.
ROOM_V10 = replace(
    ROOM_V9, identifier="10", knock_restricted_join_rule=True, enforce_int_power_levels=True,
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

# The versions the room engine runs: what capabilities advertise, createRoom accepts and
# federation joins (all "stable", as Synapse lists them).
KNOWN_ROOM_VERSIONS: dict[str, RoomVersion] = {
    v.identifier: v
    for v in (
        ROOM_V1, ROOM_V2, ROOM_V3, ROOM_V4, ROOM_V5, ROOM_V6, ROOM_V7, ROOM_V8, ROOM_V9,
        ROOM_V10, ROOM_V11, ROOM_V12,
    )
}

# rooms/_index.md: "Servers SHOULD use room version 12 as the default".
DEFAULT_ROOM_VERSION = "12"


def get_room_version(identifier: str) -> RoomVersion:
    """Look up a version the server runs; raises ``KeyError`` if we do not run it."""
    return KNOWN_ROOM_VERSIONS[identifier]

