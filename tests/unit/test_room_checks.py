"""What both paths of an event into a room check alike: the state keys its checks read
(`rooms.checks.state_keys_for`) and the room's member limit (`protocol.member_limit`)."""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.protocol.auth_rules import auth_types_for_event
from homeserver.protocol.member_limit import (
    MEMBER_LIMIT,
    MEMBER_LIMIT_TYPE,
    exceeded_limit,
    room_limit,
    takes_seat,
)
from homeserver.protocol.room_versions import get_room_version
from homeserver.protocol.state_keys import CREATE, JOIN_RULES, POWER_LEVELS, StateKey
from homeserver.services.rooms.checks import keys_read, state_keys_for

ALICE, BOB = "@alice:a.example", "@bob:b.example"


def _pdu(event_type: str, sender: str, content: dict[str, Any], state_key: str | None = None,
         ) -> dict[str, Any]:
    pdu: dict[str, Any] = {"type": event_type, "sender": sender, "content": content}
    if state_key is not None:
        pdu["state_key"] = state_key
    return pdu


def _member(membership: str, target: str = BOB, sender: str = BOB) -> dict[str, Any]:
    return _pdu("m.room.member", sender, {"membership": membership}, target)


# ---- state_keys_for ---------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["10", "11", "12"])
def test_a_message_reads_the_create_power_levels_limit_and_its_senders_membership(
    version: str,
) -> None:
    # v12 cites no create event in auth_events, but the checks read it all the same.
    keys = state_keys_for(_pdu("m.room.message", ALICE, {"body": "hi"}), get_room_version(version))
    assert keys == [CREATE, POWER_LEVELS, MEMBER_LIMIT, ("m.room.member", ALICE)]


def test_a_state_event_reads_its_own_key_the_state_it_replaces() -> None:
    keys = state_keys_for(
        _pdu("m.room.name", ALICE, {"name": "n"}, ""), get_room_version("11")
    )
    assert keys == [
        CREATE, POWER_LEVELS, MEMBER_LIMIT, ("m.room.member", ALICE), ("m.room.name", "")
    ]


def test_an_invite_reads_the_join_rules_and_both_memberships_once_each() -> None:
    keys = state_keys_for(_member("invite", BOB, ALICE), get_room_version("11"))
    assert keys == [
        CREATE, POWER_LEVELS, MEMBER_LIMIT, ("m.room.member", ALICE), ("m.room.member", BOB),
        JOIN_RULES,
    ]


def test_a_restricted_join_reads_its_authorisers_membership() -> None:
    join = _pdu(
        "m.room.member", BOB, {"membership": "join", "join_authorised_via_users_server": ALICE},
        BOB,
    )
    keys = state_keys_for(join, get_room_version("11"))
    assert ("m.room.member", ALICE) in keys
    assert len(keys) == len(set(keys))


def test_a_non_string_state_key_is_no_state_key() -> None:
    pdu = _pdu("m.room.message", ALICE, {})
    pdu["state_key"] = 5
    keys = state_keys_for(pdu, get_room_version("11"))
    assert keys == [CREATE, POWER_LEVELS, MEMBER_LIMIT, ("m.room.member", ALICE)]


def test_keys_read_for_a_batch_is_the_union_of_each_events_keys_once() -> None:
    version = get_room_version("11")
    name = _pdu("m.room.name", ALICE, {"name": "n"}, "")
    invite = _member("invite", BOB, ALICE)
    one_by_one = {*state_keys_for(name, version), *state_keys_for(invite, version)}
    batch = keys_read(
        [
            auth_types_for_event("m.room.name", ALICE, "", {"name": "n"}, version),
            auth_types_for_event("m.room.member", ALICE, BOB, {"membership": "invite"}, version),
        ],
        [("m.room.name", ""), ("m.room.member", BOB)],
    )
    assert set(batch) == one_by_one and len(batch) == len(one_by_one)


# ---- the member limit -------------------------------------------------------------------------

def _limit_state(value: Any) -> dict[StateKey, dict[str, Any]]:
    return {MEMBER_LIMIT: _pdu(MEMBER_LIMIT_TYPE, ALICE, {"max_members": value}, "")}


def test_the_room_limit_is_the_lower_of_the_rooms_and_the_servers() -> None:
    assert room_limit({}, 100) == 100
    assert room_limit(_limit_state(10), 100) == 10
    assert room_limit(_limit_state(1000), 100) == 100


@pytest.mark.parametrize("value", [0, -3, True, "10", 2.5, None])
def test_a_limit_that_is_not_a_positive_integer_is_ignored(value: Any) -> None:
    assert room_limit(_limit_state(value), 100) == 100


def test_joins_and_invites_take_seats_and_nothing_else_does() -> None:
    assert takes_seat(_member("join")) and takes_seat(_member("invite", BOB, ALICE))
    for membership in ("leave", "ban", "knock"):
        assert not takes_seat(_member(membership))
    assert not takes_seat(_pdu("m.room.message", BOB, {"membership": "join"}))


def test_a_join_past_the_limit_is_refused_with_the_limit() -> None:
    state = _limit_state(3)
    assert exceeded_limit(_member("join"), None, 2, state, 100) is None
    assert exceeded_limit(_member("join"), None, 3, state, 100) == 3
    assert exceeded_limit(_member("invite", BOB, ALICE), "leave", 3, state, 100) == 3
    # The server's own cap binds a room whose limit event asks for more.
    assert exceeded_limit(_member("join"), None, 2, _limit_state(50), 2) == 2


def test_a_seated_user_or_a_seatless_event_never_exceeds_the_limit() -> None:
    state = _limit_state(3)
    # An invited user joining keeps the seat the invite took.
    assert exceeded_limit(_member("join"), "invite", 3, state, 100) is None
    assert exceeded_limit(_member("join"), "join", 3, state, 100) is None
    assert exceeded_limit(_member("leave"), "join", 9, state, 100) is None
    assert exceeded_limit(_pdu("m.room.message", BOB, {}), None, 9, state, 100) is None
