"""Authorisation of m.room.power_levels changes (rooms v1-v12) and v12 room creators."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from homeserver.protocol.auth_rules import check_auth_rules
from homeserver.protocol.errors import AuthError, InvalidEventError
from homeserver.protocol.power_levels_rules import check_power_levels_change
from homeserver.protocol.room_versions import get_room_version

from .room_builder import RoomBuilder

ALICE = "@alice:a.example"
BOB = "@bob:b.example"
CAROL = "@carol:c.example"
DAVE = "@dave:d.example"
VERSIONS = [str(v) for v in range(1, 13)]
INT_ONLY = ["10", "11", "12"]
STRINGY = [str(v) for v in range(1, 10)]  # rooms fragment v1-stringy-power-levels
FLOATY = [str(v) for v in range(1, 6)]  # rooms fragment v1-floaty-power-levels


def moderated_room(version: str) -> RoomBuilder:
    """Bob is a moderator (50) who may send power levels; Carol 50, Dave 75."""
    b = RoomBuilder.standard(version)
    for user in (BOB, CAROL, DAVE):
        b.join(user)
    pl = b.power_levels()
    pl["users"] = {**pl["users"], BOB: 50, CAROL: 50, DAVE: 75}
    pl["events"] = {**pl["events"], "m.room.power_levels": 50}
    b.set_power_levels(ALICE, pl)
    return b


def refused(b: RoomBuilder, sender: str, content: dict[str, Any]) -> str:
    with pytest.raises(AuthError) as info:
        b.set_power_levels(sender, content)
    return info.value.reason


@pytest.mark.parametrize("version", VERSIONS)
def test_first_power_levels_event_only_needs_valid_shape(version: str) -> None:
    b = RoomBuilder(version)
    b.join(ALICE)
    b.set_power_levels(ALICE, {"users_default": 100, "ban": 1000})


@pytest.mark.parametrize("version", INT_ONLY)
@pytest.mark.parametrize(
    "bad",
    [{"ban": "50"}, {"kick": True}, {"users_default": None}, {"events": {"m.x": "1"}},
     {"events": []}, {"notifications": {"room": "50"}}, {"users": {"@x:x.example": "100"}},
     {"users": {"not-a-user": 1}}, {"users": []}, {"invite": 2**53}],
)
def test_non_integer_levels_are_refused(version: str, bad: dict[str, Any]) -> None:
    b = RoomBuilder(version)
    b.join(ALICE)
    if "invite" in bad:
        with pytest.raises(InvalidEventError):  # out of canonical range: cannot be built
            b.set_power_levels(ALICE, bad)
        return
    with pytest.raises(AuthError, match=r"9\.[123]"):
        b.set_power_levels(ALICE, bad)


@pytest.mark.parametrize("version", VERSIONS)
def test_cannot_raise_anyone_above_own_level(version: str) -> None:
    b = moderated_room(version)
    pl = b.power_levels()
    assert "9.9" in refused(b, BOB, {**pl, "users": {**pl["users"], "@new:x.example": 51}})
    b.set_power_levels(BOB, {**pl, "users": {**pl["users"], "@new:x.example": 50}})


@pytest.mark.parametrize("version", VERSIONS)
def test_cannot_change_others_at_or_above_own_level(version: str) -> None:
    b = moderated_room(version)
    pl = b.power_levels()
    assert "9.8" in refused(b, BOB, {**pl, "users": {**pl["users"], CAROL: 10}})
    without_dave = {k: v for k, v in pl["users"].items() if k != DAVE}
    assert "9.8" in refused(b, BOB, {**pl, "users": without_dave})
    # but one's own level may be lowered
    b.set_power_levels(BOB, {**pl, "users": {**pl["users"], BOB: 20}})


@pytest.mark.parametrize("version", VERSIONS)
def test_level_keys_changes(version: str) -> None:
    b = moderated_room(version)
    pl = b.power_levels()
    assert "9.5.2" in refused(b, BOB, {**pl, "ban": 60})
    b.set_power_levels(BOB, {**pl, "ban": 40})
    pl = b.power_levels()
    b.set_power_levels(ALICE, {**pl, "kick": 75})
    pl = b.power_levels()
    assert "9.5.1" in refused(b, BOB, {**pl, "kick": 50})
    without_kick = {k: v for k, v in pl.items() if k != "kick"}
    assert "9.5.1" in refused(b, BOB, without_kick)


@pytest.mark.parametrize("version", VERSIONS)
def test_events_and_notifications_entries(version: str) -> None:
    b = moderated_room(version)
    pl = b.power_levels()
    events = pl["events"]
    assert "9.7" in refused(b, BOB, {**pl, "events": {**events, "m.room.topic": 60}})
    assert "9.6" in refused(b, BOB, {**pl, "events": {**events, "m.room.tombstone": 0}})
    if int(version) >= 6:
        assert "9.7" in refused(b, BOB, {**pl, "notifications": {"room": 60}})
    else:  # notifications levels are guarded from v6 on (rooms/v6.md, rules 9.4 and 9.5)
        b.set_power_levels(BOB, {**pl, "notifications": {"room": 60}})
        b.set_power_levels(BOB, {**pl, "notifications": {"room": "not a level"}})
        pl = b.power_levels()
    b.set_power_levels(BOB, {**pl, "events": {**events, "m.room.topic": 50},
                             "notifications": {"room": 20}})


# -- v1-v9: levels spelt as strings, v1-v5 as floats ------------------------------------------

@pytest.mark.parametrize("version", STRINGY)
def test_string_levels_count_as_their_integers(version: str) -> None:
    """The spec's example content, then the formats it lists: signs, leading zeroes, spaces."""
    b = moderated_room(version)
    pl = b.power_levels()
    spelt = {**pl, "ban": "50", "events_default": "0", "state_default": "50",
             "events": {**pl["events"], "m.room.power_levels": "50"},
             "users": {**pl["users"], BOB: " +50 ", CAROL: "00050", DAVE: " 0075"}}
    b.set_power_levels(BOB, spelt)  # every value the same level as before: no change
    b.set_power_levels(BOB, {**spelt, "kick": " -100 "})
    assert "9.9" in refused(b, BOB, {**spelt, "users": {**spelt["users"], "@new:x.example": "51"}})
    assert "9.8" in refused(b, BOB, {**spelt, "users": {**spelt["users"], DAVE: "0"}})
    # A string level is a level for every other rule too: Carol (50) may now send a topic.
    b.set_power_levels(ALICE, {**spelt, "events": {**spelt["events"], "m.room.topic": "50"}})
    b.send(CAROL, "m.room.topic", {"topic": "t"}, "")


@pytest.mark.parametrize("version", STRINGY)
@pytest.mark.parametrize(
    "bad",
    [{"ban": "5O"}, {"ban": "50.0"}, {"kick": "1_0"}, {"invite": "++1"}, {"redact": ""},
     {"kick": True}, {"users_default": None}, {"events": {"m.x": "x"}}, {"events": []},
     {"users": {"@x:x.example": "1e3"}}, {"users": {"not-a-user": 1}}, {"users": []}],
)
def test_malformed_levels_are_refused_before_v10_too(version: str, bad: dict[str, Any]) -> None:
    b = RoomBuilder(version)
    b.join(ALICE)
    with pytest.raises(AuthError, match=r"9\.[123]"):
        b.set_power_levels(ALICE, bad)


@pytest.mark.parametrize("version", FLOATY)
def test_float_levels_are_truncated_before_v6(version: str) -> None:
    """rooms fragment v1-floaty-power-levels: @bob's 50.57 is the same 50 as @alice's."""
    b = moderated_room(version)
    pl = b.power_levels()
    b.set_power_levels(ALICE, {**pl, "users": {**pl["users"], CAROL: 50.57},
                               "events": {**pl["events"], "m.room.topic": 5.114698e1}})
    with pytest.raises(AuthError, match="rule 7"):
        b.send(CAROL, "m.room.topic", {"topic": "t"}, "")  # 50.57 is 50 < 51.14698's 51
    pl = b.power_levels()
    assert "9.8" in refused(b, BOB, {**pl, "users": {**pl["users"], CAROL: 10}})  # 50 >= 50
    b.set_power_levels(ALICE, {**pl, "events": {**pl["events"], "m.room.topic": 50.99}})
    b.send(CAROL, "m.room.topic", {"topic": "t"}, "")


@pytest.mark.parametrize("version", [str(v) for v in range(6, 13)])
def test_float_levels_are_refused_from_v6(version: str) -> None:
    b = RoomBuilder(version)
    b.join(ALICE)
    with pytest.raises(InvalidEventError):  # not canonical JSON: it cannot even be built
        b.set_power_levels(ALICE, {"users": {ALICE: 100.5}})
    # ...and the auth rules refuse it too, should an unchecked event reach them.
    _, pdu = b.make(ALICE, "m.room.power_levels", {"ban": 50}, "")
    with pytest.raises(AuthError, match=r"9\.1"):
        check_auth_rules({**pdu, "content": {"ban": 50.0}}, b.auth_state(), b.rv,
                         is_signed_by=b.is_signed_by)


# -- v12 creators -----------------------------------------------------------------------------

def test_v12_creators_cannot_be_listed_in_users() -> None:
    b = RoomBuilder.standard("12", create_content={"additional_creators": [BOB]})
    pl = b.power_levels()
    assert "10.4" in refused(b, ALICE, {**pl, "users": {ALICE: 100}})
    assert "10.4" in refused(b, ALICE, {**pl, "users": {BOB: 100}})


def test_v11_creator_is_listed_and_can_be_demoted() -> None:
    b = RoomBuilder.standard("11")
    pl = b.power_levels()
    assert pl["users"] == {ALICE: 100}
    b.set_power_levels(ALICE, {**pl, "users": {ALICE: 10}})
    with pytest.raises(AuthError):
        b.set_power_levels(ALICE, pl)


def test_v12_creators_have_infinite_power() -> None:
    b = RoomBuilder.standard("12", create_content={"additional_creators": [BOB]})
    b.join(BOB)
    b.join(CAROL)
    pl = b.power_levels()
    b.set_power_levels(ALICE, {**pl, "users": {CAROL: 2**53 - 1},
                               "events": {**pl["events"], "m.room.power_levels": 2**53 - 1}})
    # Carol has the biggest finite level, yet cannot touch creators
    with pytest.raises(AuthError):
        b.kick(CAROL, BOB)
    with pytest.raises(AuthError):
        b.ban(CAROL, ALICE)
    # an additional creator outranks any finite level and sends anything...
    b.send(BOB, "m.room.tombstone", {"body": "moved", "replacement_room": "!x"}, "")
    b.kick(BOB, CAROL)
    # ...but creators are equal to each other
    with pytest.raises(AuthError):
        b.kick(BOB, ALICE)


def test_v12_additional_creator_needs_to_join_normally() -> None:
    b = RoomBuilder.standard("12", join_rule="invite",
                             create_content={"additional_creators": [BOB]})
    with pytest.raises(AuthError):
        b.join(BOB)  # the first-join shortcut is only for the create event's sender
    b.invite(ALICE, BOB)
    b.join(BOB)


def test_v12_creator_without_power_levels_event() -> None:
    b = RoomBuilder("12", create_content={"additional_creators": [BOB]})
    b.join(ALICE)
    b.set_join_rule(ALICE, "public")
    b.join(BOB)
    b.send(BOB, "m.room.name", {"name": "n"}, "")
    b.join(CAROL)
    with pytest.raises(AuthError):
        b.send(CAROL, "m.room.name", {"name": "n"}, "")


# -- property: a spelling is never a decision -------------------------------------------------

_levels = st.integers(-5, 120)
_content = st.fixed_dictionaries(
    {},
    optional={
        "ban": _levels, "kick": _levels, "invite": _levels, "state_default": _levels,
        "users": st.dictionaries(st.sampled_from([ALICE, BOB, CAROL, DAVE]), _levels),
        "events": st.dictionaries(st.sampled_from(["m.room.name", "m.room.topic"]), _levels),
    },
)


def _spelt(content: dict[str, Any], spell: Any) -> dict[str, Any]:
    return {k: ({u: spell(v) for u, v in v.items()} if isinstance(v, dict) else spell(v))
            for k, v in content.items()}


def _verdict(new: dict[str, Any], old: dict[str, Any], sender_level: int, rv: Any) -> str:
    try:
        check_power_levels_change({"sender": BOB, "content": new}, old, sender_level, set(), rv)
    except AuthError as e:
        return e.reason.split(":")[0]
    return "allowed"


@settings(max_examples=150, deadline=None)
@given(new=_content, old=_content, sender_level=_levels)
def test_levels_spelt_as_strings_or_floats_decide_as_their_integers(
    new: dict[str, Any], old: dict[str, Any], sender_level: int
) -> None:
    """v1-v9 admit " +50" for 50 (and v1-v5 50.5 for 50): whatever the change, spelling the
    levels so never changes the verdict; v10 refuses every such spelling."""
    for version in VERSIONS:
        rv = get_room_version(version)
        verdict = _verdict(new, old, sender_level, rv)
        as_strings = _verdict(_spelt(new, lambda v: f" +{v:03d} " if v >= 0 else f"{v}"),
                              _spelt(old, str), sender_level, rv)
        if int(version) <= 9:
            assert as_strings == verdict
        elif any(v != {} for v in new.values()):  # some level spelt as a string
            assert as_strings.startswith("rule 9.")
        if int(version) <= 5:
            as_floats = _verdict(_spelt(new, lambda v: v + (0.5 if v >= 0 else -0.5)),
                                 _spelt(old, float), sender_level, rv)
            assert as_floats == verdict
