"""Room version records."""

from __future__ import annotations

import dataclasses

import pytest

from homeserver.protocol.room_versions import (
    DEFAULT_ROOM_VERSION,
    KNOWN_ROOM_VERSIONS,
    get_room_version,
)


def test_known_versions() -> None:
    assert list(KNOWN_ROOM_VERSIONS) == [str(v) for v in range(1, 13)]
    assert DEFAULT_ROOM_VERSION == "12"
    with pytest.raises(KeyError):
        get_room_version("13")


def test_flags() -> None:
    v10, v11, v12 = (get_room_version(v) for v in ("10", "11", "12"))
    assert (v10.redaction_rules, v11.redaction_rules, v12.redaction_rules) == ("v9", "v11", "v11")
    assert (v10.state_res, v11.state_res, v12.state_res) == ("v2", "v2", "v2.1")
    assert all(v.enforce_int_power_levels for v in (v10, v11, v12))
    assert not v10.implicit_room_creator and v11.implicit_room_creator
    assert v12.room_id_from_create_event and not v11.room_id_from_create_event
    assert v11.create_event_in_auth_events and not v12.create_event_in_auth_events
    assert v12.privileged_creators and not v11.privileged_creators
    assert v12.updated_redaction_rules and not v10.updated_redaction_rules
    with pytest.raises(dataclasses.FrozenInstanceError):
        v12.identifier = "13"  # type: ignore[misc]


# Each flag, version by version, from rooms/v1.md ... v12.md (a row is versions 1 to 12).
_SPEC_FLAGS = {
    "event_id_format": ["v1", "v1", "v3"] + ["v4"] * 9,
    "redaction_rules": ["v1"] * 5 + ["v6", "v6", "v8", "v9", "v9", "v11", "v11"],
    "state_res": ["v1"] + ["v2"] * 10 + ["v2.1"],
    "enforce_key_validity": [False] * 4 + [True] * 8,
    "special_case_aliases_auth": [True] * 5 + [False] * 7,
    "redaction_auth_rule": [True] * 2 + [False] * 10,
    "strict_canonical_json": [False] * 5 + [True] * 7,
    "limit_notifications_power_levels": [False] * 5 + [True] * 7,
    "knock_join_rule": [False] * 6 + [True] * 6,
    "restricted_join_rule": [False] * 7 + [True] * 5,
    "knock_restricted_join_rule": [False] * 9 + [True] * 3,
    "enforce_int_power_levels": [False] * 9 + [True] * 3,
    "implicit_room_creator": [False] * 10 + [True] * 2,
    "redacts_in_content": [False] * 10 + [True] * 2,
    "room_id_from_create_event": [False] * 11 + [True],
    "create_event_in_auth_events": [True] * 11 + [False],
    "privileged_creators": [False] * 11 + [True],
    "additional_creators": [False] * 11 + [True],
}


@pytest.mark.parametrize("flag", sorted(_SPEC_FLAGS))
def test_every_flag_of_every_version_follows_the_spec(flag: str) -> None:
    assert [getattr(KNOWN_ROOM_VERSIONS[str(v)], flag) for v in range(1, 13)] == _SPEC_FLAGS[
        flag]


def test_every_flag_is_in_the_table() -> None:
    fields = {f.name for f in dataclasses.fields(get_room_version("12"))} - {"identifier"}
    assert fields == set(_SPEC_FLAGS)
