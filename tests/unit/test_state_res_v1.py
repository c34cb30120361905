"""State resolution v1 (room version 1), rule by rule of rooms/v1.md "State resolution".

Where the spec is silent the expected outcomes are Synapse's (``synapse/state/v1.py``), which
the module docstring of ``state_res_v1`` lists.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import pytest

from homeserver.protocol.room_versions import ROOM_V1, ROOM_V10
from homeserver.protocol.state_keys import StateKey
from homeserver.protocol.state_res import resolve_state
from homeserver.protocol.state_res_v1 import auth_keys, resolve_state_v1, split_state

from .room_builder import RoomBuilder
from .state_forks import ALICE, BOB, CAROL, auth_difference, forks

PL: StateKey = ("m.room.power_levels", "")
JOIN_RULES: StateKey = ("m.room.join_rules", "")
TOPIC: StateKey = ("m.room.topic", "")
CAROL_MEMBER: StateKey = ("m.room.member", CAROL)


def sha1(event_id: str) -> str:
    return hashlib.sha1(event_id.encode()).hexdigest()


def resolve(b: RoomBuilder, *state_sets: Mapping[StateKey, str]) -> dict[StateKey, str]:
    return resolve_state(b.rv, state_sets, b.events, set())


def moderated_room(*, power_levels_level: int = 100) -> RoomBuilder:
    """Alice 100, Bob 50, Carol 0; changing the power levels needs ``power_levels_level``."""
    b = RoomBuilder.standard("1")
    b.join(BOB)
    b.join(CAROL)
    pl = b.power_levels()
    b.set_power_levels(ALICE, {
        **pl, "users": {**pl["users"], BOB: 50},
        "events": {**pl["events"], "m.room.power_levels": power_levels_level},
    })
    return b


def with_users(b: RoomBuilder, **levels: int) -> dict[str, Any]:
    """The room's power levels content with some users' levels changed (by localpart)."""
    pl = b.power_levels()
    names = {"alice": ALICE, "bob": BOB, "carol": CAROL}
    return {**pl, "users": {**pl["users"], **{names[k]: v for k, v in levels.items()}}}


# -- the split ------------------------------------------------------------------------------

def test_a_key_some_sets_lack_is_not_a_conflict() -> None:
    unconflicted, conflicted = split_state([{TOPIC: "$t", PL: "$p1"}, {PL: "$p2"}])
    assert unconflicted == {TOPIC: "$t"}
    assert conflicted == {PL: {"$p1", "$p2"}}


def test_unconflicted_state_is_kept_and_a_single_state_set_is_itself() -> None:
    b = moderated_room()
    b.send(ALICE, "m.room.name", {"name": "shared"}, "")
    a, c = forks(b)
    only_a = a.send(ALICE, "m.room.topic", {"topic": "a"}, "")
    resolved = resolve(b, a.state, c.state)
    assert resolved == a.state  # nothing conflicts: c's state is a subset of a's
    assert resolved[TOPIC] == only_a
    assert resolve(b, b.state_ids) == b.state_ids
    assert resolve(b) == {}


def test_the_auth_keys_of_a_join_name_its_membership_and_the_join_rules() -> None:
    join = {"type": "m.room.member", "sender": BOB, "state_key": BOB,
            "content": {"membership": "join"}}
    keys = {("m.room.create", ""), PL, ("m.room.member", BOB), JOIN_RULES}
    assert auth_keys(ROOM_V1, [join]) == keys


# -- power levels ---------------------------------------------------------------------------

@pytest.mark.parametrize("bob_deeper", [True, False])
def test_conflicting_power_levels_are_replayed_by_depth_through_the_auth_rules(
    bob_deeper: bool,
) -> None:
    """Alice demotes Bob while Bob, on another branch, promotes Carol. Whichever is deeper,
    the demotion stands: first by depth it is followed by Bob's change, which the demotion
    refuses; second, it is allowed after Bob's."""
    b = moderated_room(power_levels_level=50)
    a, c = forks(b)
    if not bob_deeper:
        a.send(ALICE, "m.room.topic", {"topic": "first"}, "")
    demote = a.send(ALICE, "m.room.power_levels", with_users(b, bob=0), "")
    if bob_deeper:
        c.send(BOB, "m.room.topic", {"topic": "first"}, "")
    promote = c.send(BOB, "m.room.power_levels", with_users(b, carol=50), "")
    depths = b.events[demote]["depth"], b.events[promote]["depth"]
    assert (depths[1] > depths[0]) == bob_deeper
    assert resolve(b, a.state, c.state)[PL] == demote
    assert resolve(b, c.state, a.state)[PL] == demote


def test_of_two_allowed_power_levels_the_deeper_wins_whatever_the_timestamps() -> None:
    b = moderated_room()
    a, c = forks(b)
    shallow = a.send(ALICE, "m.room.power_levels", with_users(b, carol=10), "", ts=9_000_000)
    c.send(ALICE, "m.room.topic", {"topic": "first"}, "", ts=1_100_000)
    deep = c.send(ALICE, "m.room.power_levels", with_users(b, carol=20), "", ts=1_100_001)
    assert resolve(b, a.state, c.state)[PL] == deep
    # v2 orders these by timestamp instead: the same events resolve otherwise there.
    v10 = [a.state, c.state]
    assert resolve_state(ROOM_V10, v10, b.events, auth_difference(b, v10))[PL] == shallow


def test_power_levels_of_equal_depth_end_with_the_lowest_sha1() -> None:
    b = moderated_room()
    a, c = forks(b)
    x = a.send(ALICE, "m.room.power_levels", with_users(b, carol=10), "")
    y = c.send(ALICE, "m.room.power_levels", with_users(b, carol=20), "")
    assert b.events[x]["depth"] == b.events[y]["depth"]
    assert resolve(b, a.state, c.state)[PL] == min(x, y, key=sha1)


# -- join rules and members -----------------------------------------------------------------

def test_join_rules_are_resolved_after_power_levels() -> None:
    """R lacks conflicted power levels until their pass; the join rules pass sees its result."""
    b = moderated_room()
    pl = b.power_levels()
    b.set_power_levels(ALICE, {**pl, "events": {**pl["events"], "m.room.join_rules": 50}})
    # Alice changes the power levels but Bob stays a moderator: his change stands.
    a, c = forks(b)
    a.send(ALICE, "m.room.power_levels", with_users(b, carol=10), "")
    allowed = c.send(BOB, "m.room.join_rules", {"join_rule": "invite"}, "")
    assert resolve(b, a.state, c.state)[JOIN_RULES] == allowed
    # Alice demotes Bob while he closes the room: his change is judged with her demotion.
    a2, c2 = forks(b)
    a2.send(ALICE, "m.room.power_levels", with_users(b, bob=0), "")
    c2.send(ALICE, "m.room.topic", {"topic": "deeper"}, "")
    c2.send(BOB, "m.room.join_rules", {"join_rule": "invite"}, "")
    assert resolve(b, a2.state, c2.state)[JOIN_RULES] == b.state_ids[JOIN_RULES]


def test_members_are_resolved_after_join_rules() -> None:
    """Carol leaves on both branches and rejoins on one while Alice, on the other, sets the
    join rules again: Carol's rejoin is judged against the resolved join rules."""
    b = moderated_room()
    a, c = forks(b)
    a.send(CAROL, "m.room.member", {"membership": "leave"}, CAROL)
    a.send(ALICE, "m.room.join_rules", {"join_rule": "public"}, "")
    c.send(CAROL, "m.room.member", {"membership": "leave"}, CAROL)
    rejoin = c.send(CAROL, "m.room.member", {"membership": "join"}, CAROL)
    assert resolve(b, a.state, c.state)[CAROL_MEMBER] == rejoin


@pytest.mark.parametrize("ban_deeper", [True, False])
def test_a_ban_beats_a_concurrent_join_either_way(ban_deeper: bool) -> None:
    """Carol leaves and rejoins on one branch while Alice bans her on the other: deeper, the
    ban is allowed after the join; shallower, it refuses the join after it."""
    b = moderated_room()
    a, c = forks(b)
    if ban_deeper:
        a.send(ALICE, "m.room.topic", {"topic": "first"}, "")
        a.send(ALICE, "m.room.name", {"name": "second"}, "")
    ban = a.send(ALICE, "m.room.member", {"membership": "ban"}, CAROL)
    c.send(CAROL, "m.room.member", {"membership": "leave"}, CAROL)
    join = c.send(CAROL, "m.room.member", {"membership": "join"}, CAROL)
    assert (b.events[ban]["depth"] > b.events[join]["depth"]) == ban_deeper
    assert resolve(b, a.state, c.state)[CAROL_MEMBER] == ban


def test_a_ban_by_a_moderator_demoted_meanwhile_does_not_stand() -> None:
    b = moderated_room()
    a, c = forks(b)
    demote = a.send(ALICE, "m.room.power_levels", with_users(b, bob=0), "")
    ban = c.send(BOB, "m.room.member", {"membership": "ban"}, CAROL)
    resolved = resolve(b, a.state, c.state)
    assert resolved[PL] == demote
    assert resolved[CAROL_MEMBER] == b.state_ids[CAROL_MEMBER]
    assert ban not in resolved.values()


def test_member_keys_are_judged_against_the_state_before_the_member_pass() -> None:
    """Bob leaves on one branch and changes his display name on the other; there he then
    invites Dave, whom Alice invited on the first. Bob's membership is conflicted, so R lacks
    it while Dave's is judged: Bob's invite does not stand (as in Synapse), whichever of his
    two membership events wins its own key."""
    dave = "@dave:d.example"
    b = moderated_room()
    a, c = forks(b)
    a.send(BOB, "m.room.member", {"membership": "leave"}, BOB)
    alice_invite = a.send(ALICE, "m.room.member", {"membership": "invite"}, dave)
    c.send(BOB, "m.room.member", {"membership": "join", "displayname": "Bob"}, BOB)
    c.send(ALICE, "m.room.topic", {"topic": "deeper"}, "")
    c.send(BOB, "m.room.member", {"membership": "invite"}, dave)
    assert resolve(b, a.state, c.state)[("m.room.member", dave)] == alice_invite


# -- everything else ------------------------------------------------------------------------

def test_other_state_takes_the_deepest_event_the_auth_rules_allow() -> None:
    b = moderated_room()
    a, c = forks(b)
    a.send(ALICE, "m.room.name", {"name": "first"}, "")
    deep = a.send(ALICE, "m.room.topic", {"topic": "deep"}, "", ts=1_000_500)
    shallow = c.send(BOB, "m.room.topic", {"topic": "shallow"}, "", ts=9_000_000)
    assert resolve(b, a.state, c.state)[TOPIC] == deep
    # A deeper topic by a user demoted meanwhile fails its check: the shallower one wins.
    a2, c2 = forks(b)
    a2.send(BOB, "m.room.name", {"name": "first"}, "")
    refused = a2.send(BOB, "m.room.topic", {"topic": "deep"}, "")
    allowed = c2.send(ALICE, "m.room.topic", {"topic": "shallow"}, "")
    c2.send(ALICE, "m.room.power_levels", with_users(b, bob=0), "")
    resolved = resolve(b, a2.state, c2.state)
    assert resolved[TOPIC] == allowed != refused
    assert shallow != deep


def test_other_state_of_equal_depth_goes_to_the_lowest_sha1_not_the_lowest_id() -> None:
    b = moderated_room()
    for attempt in range(50):
        a, c = forks(b)
        x = a.send(ALICE, "m.room.topic", {"topic": f"x{attempt}"}, "")
        y = c.send(ALICE, "m.room.topic", {"topic": f"y{attempt}"}, "")
        if (sha1(x) < sha1(y)) != (x < y):
            break
    else:
        pytest.fail("no pair whose SHA-1 order differs from its ID order")
    assert resolve(b, a.state, c.state)[TOPIC] == min(x, y, key=sha1)
    assert resolve(b, c.state, a.state)[TOPIC] == min(x, y, key=sha1)


def test_when_no_event_is_allowed_the_shallowest_with_the_highest_sha1_is_kept() -> None:
    """Bob sets the topic on both branches and is demoted on one: neither topic passes, and,
    like Synapse, the last in the order stays."""
    b = moderated_room()
    a, c = forks(b)
    x = a.send(BOB, "m.room.topic", {"topic": "x"}, "")
    c.send(BOB, "m.room.name", {"name": "deeper"}, "")
    y = c.send(BOB, "m.room.topic", {"topic": "y"}, "")
    c.send(ALICE, "m.room.power_levels", with_users(b, bob=0), "")
    assert resolve(b, a.state, c.state)[TOPIC] == x
    a2, c2 = forks(b)
    p = a2.send(BOB, "m.room.topic", {"topic": "p"}, "")
    q = c2.send(BOB, "m.room.topic", {"topic": "q"}, "")
    c2.send(ALICE, "m.room.power_levels", with_users(b, bob=0), "")
    assert resolve(b, a2.state, c2.state)[TOPIC] == max(p, q, key=sha1)
    assert y != x


# -- what the caller must load --------------------------------------------------------------

def test_events_it_needs_and_was_not_given_are_reported() -> None:
    b = moderated_room()
    a, c = forks(b)
    a.send(ALICE, "m.room.topic", {"topic": "a"}, "")
    c.send(ALICE, "m.room.topic", {"topic": "c"}, "")
    # The conflicted events and Alice's membership (the sender's) are needed; old events not.
    _, conflicted = split_state([a.state, c.state])
    keys = auth_keys(ROOM_V1, [b.events[e] for e in conflicted[TOPIC]])
    needed = conflicted[TOPIC] | {b.state_ids[k] for k in keys}
    assert resolve_state_v1(ROOM_V1, [a.state, c.state], {e: b.events[e] for e in needed})
    for missing in sorted(needed):
        events = {e: b.events[e] for e in needed - {missing}}
        with pytest.raises(ValueError, match="not loaded"):
            resolve_state_v1(ROOM_V1, [a.state, c.state], events)
