"""State resolution v2 (rooms 10, 11) and v2.1 (room 12) on hand-built forks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from homeserver.protocol.state_keys import StateKey
from homeserver.protocol.state_res import _Graph, is_power_event, resolve_state

from .room_builder import RoomBuilder
from .state_forks import ALICE, BOB, CAROL, auth_difference, forks, room_with_moderator

VERSIONS = ["10", "11", "12"]
PL: StateKey = ("m.room.power_levels", "")
TOPIC: StateKey = ("m.room.topic", "")


def resolve(b: RoomBuilder, *state_sets: Mapping[StateKey, str]) -> dict[StateKey, str]:
    return resolve_state(b.rv, state_sets, b.events, auth_difference(b, state_sets))


def test_no_conflict() -> None:
    b = room_with_moderator("11")
    assert resolve(b, b.state_ids) == b.state_ids
    assert resolve(b, b.state_ids, dict(b.state_ids)) == b.state_ids
    assert resolve_state(b.rv, [], b.events, set()) == {}


@pytest.mark.parametrize("version", VERSIONS)
def test_demotion_beats_concurrent_ban(version: str) -> None:
    b = room_with_moderator(version)
    a, c = forks(b)
    pl = b.power_levels()
    demote = a.send(ALICE, "m.room.power_levels", {**pl, "users": {**pl["users"], BOB: 0}}, "")
    ban = c.send(BOB, "m.room.member", {"membership": "ban"}, CAROL)
    resolved = resolve(b, a.state, c.state)
    assert resolved[PL] == demote
    assert resolved[("m.room.member", CAROL)] == b.state_ids[("m.room.member", CAROL)]
    assert ban not in resolved.values()


@pytest.mark.parametrize("version", VERSIONS)
def test_ban_beats_state_sent_by_the_banned_user(version: str) -> None:
    b = room_with_moderator(version)
    a, c = forks(b)
    ban = a.send(ALICE, "m.room.member", {"membership": "ban"}, BOB)
    topic = c.send(BOB, "m.room.topic", {"topic": "evading"}, "")
    resolved = resolve(b, a.state, c.state)
    assert resolved[("m.room.member", BOB)] == ban
    assert topic not in resolved.values()
    assert TOPIC not in resolved


@pytest.mark.parametrize("version", VERSIONS)
def test_concurrent_join_and_leave(version: str) -> None:
    b = room_with_moderator(version)
    a, c = forks(b)
    leave = a.send(BOB, "m.room.member", {"membership": "leave"}, BOB)
    join = c.send("@dave:d.example", "m.room.member", {"membership": "join"}, "@dave:d.example")
    resolved = resolve(b, a.state, c.state)
    assert resolved[("m.room.member", BOB)] == leave
    assert resolved[("m.room.member", "@dave:d.example")] == join


@pytest.mark.parametrize("version", VERSIONS)
def test_topic_race_is_decided_by_timestamp_then_event_id(version: str) -> None:
    b = room_with_moderator(version)
    a, c = forks(b)
    early = a.send(ALICE, "m.room.topic", {"topic": "early"}, "", ts=5_000_000)
    late = c.send(BOB, "m.room.topic", {"topic": "late"}, "", ts=6_000_000)
    # Mainline ordering sorts ascending and applies in order: the later one ends up in state.
    assert resolve(b, a.state, c.state)[TOPIC] == late
    assert resolve(b, c.state, a.state)[TOPIC] == late
    assert early != late

    a2, c2 = forks(b)
    x = a2.send(ALICE, "m.room.topic", {"topic": "x"}, "", ts=7_000_000)
    y = c2.send(BOB, "m.room.topic", {"topic": "y"}, "", ts=7_000_000)
    assert resolve(b, a2.state, c2.state)[TOPIC] == max(x, y)


@pytest.mark.parametrize("version", VERSIONS)
def test_power_ordering_puts_higher_power_first(version: str) -> None:
    b = room_with_moderator(version)
    pl = b.power_levels()
    b.set_power_levels(ALICE, {**pl, "events": {**pl["events"], "m.room.join_rules": 50}})
    a, c = forks(b)
    # Alice (higher power) is ordered first even though her event is later, so Bob's
    # concurrent, equally authorised change is applied last and stands.
    a.send(ALICE, "m.room.join_rules", {"join_rule": "invite"}, "", ts=9_000_000)
    bob = c.send(BOB, "m.room.join_rules", {"join_rule": "knock"}, "", ts=8_000_000)
    assert resolve(b, a.state, c.state)[("m.room.join_rules", "")] == bob


@pytest.mark.parametrize("version", VERSIONS)
def test_equal_power_ordering_uses_timestamp_then_id(version: str) -> None:
    b = room_with_moderator(version)
    a, c = forks(b)
    first = a.send(ALICE, "m.room.join_rules", {"join_rule": "invite"}, "", ts=8_000_000)
    second = c.send(ALICE, "m.room.join_rules", {"join_rule": "knock"}, "", ts=9_000_000)
    assert resolve(b, a.state, c.state)[("m.room.join_rules", "")] == second
    assert first != second
    a2, c2 = forks(b)
    p = a2.send(ALICE, "m.room.join_rules", {"join_rule": "invite"}, "", ts=10_000_000)
    q = c2.send(ALICE, "m.room.join_rules", {"join_rule": "knock"}, "", ts=10_000_000)
    assert resolve(b, a2.state, c2.state)[("m.room.join_rules", "")] == max(p, q)


@pytest.mark.parametrize("version", VERSIONS)
def test_unconflicted_state_is_kept(version: str) -> None:
    b = room_with_moderator(version)
    b.send(ALICE, "m.room.name", {"name": "shared"}, "")
    a, c = forks(b)
    a.send(ALICE, "m.room.topic", {"topic": "a"}, "")
    resolved = resolve(b, a.state, c.state)
    assert resolved[("m.room.name", "")] == b.state_ids[("m.room.name", "")]
    assert resolved[PL] == b.state_ids[PL]


def test_missing_events_are_reported() -> None:
    b = room_with_moderator("11")
    a, c = forks(b)
    topic = a.send(ALICE, "m.room.topic", {"topic": "a"}, "")
    events = {k: v for k, v in b.events.items() if k != topic}
    with pytest.raises(ValueError, match="not loaded"):
        resolve_state(b.rv, [a.state, c.state], events, set())


def test_conflicted_state_subgraph() -> None:
    def ev(auth: list[str]) -> dict[str, Any]:
        return {"type": "x", "state_key": "", "auth_events": auth}

    events = {"$c2": ev(["$y"]), "$x": ev(["$c2"]), "$c1": ev(["$x"]), "$y": ev([]),
              "$z": ev(["$c2"])}
    graph = _Graph(events)
    assert graph.auth_chain("$c1") == {"$x", "$c2", "$y"}
    assert graph.conflicted_subgraph({"$c1", "$c2"}) == {"$c1", "$x", "$c2"}
    assert graph.conflicted_subgraph({"$c1", "$z"}) == set()


def test_is_power_event() -> None:
    assert is_power_event({"type": "m.room.power_levels", "state_key": ""})
    assert is_power_event({"type": "m.room.join_rules", "state_key": ""})
    kick = {"type": "m.room.member", "state_key": BOB, "sender": ALICE,
            "content": {"membership": "leave"}}
    assert is_power_event(kick)
    assert not is_power_event({**kick, "sender": BOB})
    assert is_power_event({**kick, "content": {"membership": "ban"}})
    assert not is_power_event({**kick, "content": {"membership": "join"}})
    assert not is_power_event({"type": "m.room.power_levels"})
