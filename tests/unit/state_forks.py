"""Forks of a `RoomBuilder` room for state resolution tests.

A `Fork` is one branch of the DAG: events sent on it see only its own state, as on a server
that has not heard of the other branch yet. `grow` plays a plan of random actions on forks,
for property tests and for comparing with Synapse.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from homeserver.protocol.auth_rules import check_auth_rules
from homeserver.protocol.errors import AuthError
from homeserver.protocol.state_keys import StateKey
from homeserver.protocol.state_res import _Graph

from .room_builder import RoomBuilder

ALICE = "@alice:a.example"
BOB = "@bob:b.example"
CAROL = "@carol:c.example"
DAVE = "@dave:d.example"
USERS = [ALICE, BOB, CAROL, DAVE]
KINDS = ["topic", "name", "power", "join_rule", "join", "leave", "invite", "kick", "ban"]
# (sender, kind, target, level): what `act` does with it depends on the kind.
Action = tuple[str, str, str, int]
_MEMBERSHIP_OF = {"join": "join", "leave": "leave", "invite": "invite", "kick": "leave",
                  "ban": "ban"}

class Fork:
    """A branch of the DAG: its tip and the state after it."""

    def __init__(self, b: RoomBuilder, state: Mapping[StateKey, str], tip: list[str]) -> None:
        self.b, self.state, self.tip = b, dict(state), list(tip)

    def send(self, sender: str, event_type: str, content: dict[str, Any],
             state_key: str | None = None, ts: int | None = None) -> str:
        """Build an event on this branch; AuthError (and no change) if its state refuses it."""
        event_id, pdu = self.b.make(sender, event_type, content, state_key,
                                    prev_events=self.tip, state=self.state, ts=ts)
        check_auth_rules(pdu, {k: self.b.events[v] for k, v in self.state.items()}, self.b.rv,
                         is_signed_by=self.b.is_signed_by)
        if state_key is not None:
            self.state[(event_type, state_key)] = event_id
        self.tip = [event_id]
        return event_id


def room_with_moderator(version: str) -> RoomBuilder:
    """Alice created it (100), Bob is a moderator (50), Carol a user; state needs 50."""
    b = RoomBuilder.standard(version)
    b.join(BOB)
    b.join(CAROL)
    pl = b.power_levels()
    b.set_power_levels(ALICE, {**pl, "users": {**pl["users"], BOB: 50}, "state_default": 50})
    return b


def forks(b: RoomBuilder, count: int = 2) -> list[Fork]:
    return [Fork(b, b.state_ids, b.latest) for _ in range(count)]


def act(fork: Fork, action: Action) -> None:
    """Send the action's event on the branch, unless the branch's state refuses it."""
    sender, kind, target, level = action
    content: dict[str, Any]
    if kind in ("topic", "name"):
        event_type, key, content = f"m.room.{kind}", "", {kind: f"{sender} {level}"}
    elif kind == "power":
        pl = dict(fork.b.events[fork.state[("m.room.power_levels", "")]]["content"])
        event_type, key = "m.room.power_levels", ""
        content = {**pl, "users": {**pl["users"], target: level}}
    elif kind == "join_rule":
        event_type, key = "m.room.join_rules", ""
        content = {"join_rule": "public" if level else "invite"}
    else:
        event_type, key = "m.room.member", sender if kind in ("join", "leave") else target
        content = {"membership": _MEMBERSHIP_OF[kind]}
    try:
        fork.send(sender, event_type, content, key)
    except AuthError:
        pass


def grow(
    version: str, plan: Sequence[Sequence[Action]]
) -> tuple[RoomBuilder, list[dict[StateKey, str]]]:
    """A room with a moderator, one fork per list of actions, and the state after each."""
    b = room_with_moderator(version)
    branches = forks(b, len(plan))
    for fork, steps in zip(branches, plan, strict=True):
        for action in steps:
            act(fork, action)
    return b, [fork.state for fork in branches]


def auth_difference(b: RoomBuilder, state_sets: Sequence[Mapping[StateKey, str]]) -> set[str]:
    """The auth difference v2 needs (the caller's auth-chain indexes provide it for real)."""
    graph = _Graph(b.events)
    # Like Synapse, each state set's auth chain includes the state events themselves.
    chains: list[set[str]] = []
    for s in state_sets:
        chain: set[str] = set()
        for e in s.values():
            chain |= {e} | graph.auth_chain(e)
        chains.append(chain)
    return set[str]().union(*chains) - chains[0].intersection(*chains[1:])
