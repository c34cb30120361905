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
    assert set(KNOWN_ROOM_VERSIONS) == {"10", "11", "12"}
    assert DEFAULT_ROOM_VERSION == "12"
    with pytest.raises(KeyError):
        get_room_version("9")


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
