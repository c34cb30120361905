"""Power level helpers and createRoom defaults."""

from __future__ import annotations

import math

import pytest

from homeserver.protocol.power_levels import (
    creators,
    default_power_levels_content,
    event_power_level,
    notification_power_level,
    parse_level,
    required_level,
    user_power_level,
)
from homeserver.protocol.room_versions import ROOM_V1, ROOM_V9, ROOM_V10, ROOM_V11, ROOM_V12

CREATE_V10 = {"type": "m.room.create", "sender": "@a:x", "content": {"creator": "@c:x"}}
CREATE_V11 = {"type": "m.room.create", "sender": "@a:x", "content": {}}
CREATE_V12 = {"type": "m.room.create", "sender": "@a:x",
              "content": {"additional_creators": ["@b:y"]}}


def test_creators_per_version() -> None:
    assert creators(CREATE_V10, ROOM_V10) == {"@c:x"}
    assert creators(CREATE_V11, ROOM_V11) == {"@a:x"}
    assert creators(CREATE_V12, ROOM_V11) == {"@a:x"}  # additional_creators is v12-only
    assert creators(CREATE_V12, ROOM_V12) == {"@a:x", "@b:y"}


def test_levels_without_power_levels_event() -> None:
    assert user_power_level("@c:x", None, CREATE_V10, ROOM_V10) == 100
    assert user_power_level("@a:x", None, CREATE_V10, ROOM_V10) == 0
    assert user_power_level("@a:x", None, CREATE_V11, ROOM_V11) == 100
    assert user_power_level("@b:y", None, CREATE_V12, ROOM_V12) == math.inf
    assert user_power_level("@z:x", None, CREATE_V12, ROOM_V12) == 0
    assert event_power_level("m.room.topic", "", None) == 50
    assert event_power_level("m.room.message", None, None) == 0
    for key, value in [("invite", 0), ("kick", 50), ("ban", 50), ("redact", 50),
                       ("state_default", 50), ("events_default", 0), ("users_default", 0)]:
        assert required_level(None, key) == value


def test_levels_with_power_levels_event() -> None:
    pl = {"users": {"@a:x": 75, "@b:y": 10}, "users_default": 5, "events": {"m.room.topic": 20},
          "state_default": 40, "events_default": 1, "kick": 3, "notifications": {"room": 7}}
    assert user_power_level("@a:x", pl, CREATE_V11, ROOM_V11) == 75
    assert user_power_level("@q:x", pl, CREATE_V11, ROOM_V11) == 5
    assert user_power_level("@a:x", pl, CREATE_V12, ROOM_V12) == math.inf  # creators win
    assert user_power_level("@b:y", pl, CREATE_V12, ROOM_V12) == math.inf
    assert event_power_level("m.room.topic", "", pl) == 20
    assert event_power_level("m.room.name", "", pl) == 40
    assert event_power_level("m.room.message", None, pl) == 1
    assert required_level(pl, "kick") == 3
    assert required_level(pl, "ban") == 50
    assert notification_power_level(pl) == 7
    assert notification_power_level(None) == 50


def test_default_content_v11_lists_creator() -> None:
    content = default_power_levels_content("@a:x", ROOM_V11, "private_chat")
    assert content["users"] == {"@a:x": 100}
    assert content["events"]["m.room.power_levels"] == 100
    assert content["events"]["m.room.tombstone"] == 100
    assert (content["state_default"], content["ban"], content["kick"], content["redact"]) == (
        50, 50, 50, 50)
    assert content["invite"] == 0
    assert default_power_levels_content("@a:x", ROOM_V11, "public_chat")["invite"] == 50
    trusted = default_power_levels_content("@a:x", ROOM_V11, "trusted_private_chat",
                                           invitees=["@b:y"])
    assert trusted["users"] == {"@a:x": 100, "@b:y": 100}


def test_default_content_v12_omits_creators_and_raises_tombstone() -> None:
    content = default_power_levels_content("@a:x", ROOM_V12, None, invitees=["@b:y"])
    assert content["users"] == {}
    assert content["events"]["m.room.tombstone"] > content["state_default"]
    assert content["events"]["m.room.tombstone"] == 150


# rooms fragment v1-stringy-power-levels lists these formats, all of them the level 100 or -100.
@pytest.mark.parametrize(("text", "level"), [
    ("100", 100), ("000100", 100), ("+100", 100), ("-100", -100), (" 100 ", 100),
    (" 00100 ", 100), (" +100 ", 100), (" -100 ", -100), ("\t7\n", 7)])
def test_string_levels(text: str, level: int) -> None:
    assert parse_level(text) == level


@pytest.mark.parametrize("text", ["", " ", "1.0", "1e2", "+-1", "1 0", "1_000", "0x10",
                                  "\u0661\u0660", "1" * 5000])
def test_strings_that_spell_no_level(text: str) -> None:
    assert parse_level(text) is None


def test_float_levels_are_truncated_and_other_values_are_none() -> None:
    # rooms fragment v1-floaty-power-levels: "5.114698E4 becomes 51146.98 ... becomes 51146"
    assert parse_level(5.114698e4) == 51146
    assert parse_level(50.57) == 50
    assert parse_level(-50.57) == -50
    for value in (float("inf"), float("nan"), True, None, [1], {"a": 1}):
        assert parse_level(value) is None


def test_the_spec_examples_of_stringy_and_floaty_levels() -> None:
    stringy = {"ban": "50", "events": {"m.room.power_levels": "100"}, "events_default": "0",
               "state_default": "50", "users": {"@example:localhost": "100"},
               "users_default": "0"}
    create = {"type": "m.room.create", "sender": "@example:localhost",
              "content": {"creator": "@example:localhost"}}
    assert user_power_level("@example:localhost", stringy, create, ROOM_V9) == 100
    assert user_power_level("@other:localhost", stringy, create, ROOM_V9) == 0
    assert required_level(stringy, "ban") == 50
    assert event_power_level("m.room.power_levels", "", stringy) == 100
    assert event_power_level("m.room.topic", "", stringy) == 50
    floaty = {"users": {"@example:example.org": 100, "@alice:localhost": 50,
                        "@bob:localhost": 50.57}}
    bob = user_power_level("@bob:localhost", floaty, create, ROOM_V1)
    assert bob == user_power_level("@alice:localhost", floaty, create, ROOM_V1) == 50
