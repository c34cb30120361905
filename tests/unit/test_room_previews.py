"""Who may preview a room, and what of another server's room summaries reaches a client
(homeserver/protocol/room_previews.py)."""

from __future__ import annotations

from typing import Any

from homeserver.protocol.room_previews import (
    MAX_CHILDREN_STATE,
    MAX_VIA_SERVERS,
    child_order,
    clean_remote_summary,
    is_valid_child,
    open_to_all,
    rooms_allowing,
)

ROOM = "!room:example.org"
CHILD = "!child:example.org"


def child(state_key: str = CHILD, **content: Any) -> dict[str, Any]:
    return {"type": "m.space.child", "state_key": state_key, "sender": "@a:example.org",
            "origin_server_ts": 5, "content": {"via": ["example.org"], **content}}


def test_open_to_all_by_join_rule_or_world_readable_history() -> None:
    for rule in ("public", "knock", "knock_restricted"):
        assert open_to_all({"join_rule": rule})
    assert open_to_all({"join_rule": "invite", "world_readable": True})
    assert not open_to_all({"join_rule": "restricted", "world_readable": False})
    assert not open_to_all({"join_rule": "invite", "world_readable": "true"})


def test_allowed_rooms_only_for_a_restricted_rule() -> None:
    rules = {"join_rule": "restricted", "allow": [
        {"type": "m.room_membership", "room_id": ROOM}, {"type": "other", "room_id": CHILD},
    ]}
    assert rooms_allowing(rules, restricted=True) == [ROOM]
    assert rooms_allowing(rules, restricted=False) == []


def test_children_need_a_via_and_sort_by_order_then_time() -> None:
    assert not is_valid_child({"via": []}, False)
    assert not is_valid_child({"via": ["x"]}, True)
    assert is_valid_child({"via": ["x"], "suggested": True}, True)
    ordered = sorted([
        {**child("!c:x"), "origin_server_ts": 1},
        child("!b:x", order="b"),
        child("!a:x", order="\u00e9"),  # not printable ASCII: as if it had none
        child("!d:x", order="a"),
    ], key=child_order)
    assert [c["state_key"] for c in ordered] == ["!d:x", "!b:x", "!c:x", "!a:x"]


def test_a_peers_summary_is_cut_down_to_the_spec() -> None:
    summary = clean_remote_summary({
        "room_id": ROOM, "num_joined_members": 3, "name": "Room", "topic": 7,
        "world_readable": "yes", "guest_can_join": True, "allowed_room_ids": [CHILD, 5],
        "evil": {"x": 1}, "children_state": [
            child(order="b"), child("!other:example.org", order="a"), {"type": "m.room.name"},
            {**child(), "content": {"via": []}}, {**child(), "origin_server_ts": True},
        ],
    }, ROOM)
    assert summary == {
        "room_id": ROOM, "num_joined_members": 3, "name": "Room", "world_readable": False,
        "guest_can_join": True, "allowed_room_ids": [CHILD],
        "children_state": [child("!other:example.org", order="a"), child(order="b")],
    }


def test_what_a_peer_makes_this_server_keep_of_a_summary_is_bounded() -> None:
    """The first children in the spec's order, each cut to the fields a walk reads."""
    many = [child(f"!c{i:05}:example.org", order=f"{i:05}") for i in range(MAX_CHILDREN_STATE * 5)]
    many[0]["content"].update(via=[f"s{i}.example.org" for i in range(1000)], padding="x" * 9999)
    summary = clean_remote_summary({
        "room_id": ROOM, "num_joined_members": 1, "children_state": list(reversed(many)),
    })
    assert summary is not None
    kept = summary["children_state"]
    assert [c["state_key"] for c in kept] == [c["state_key"] for c in many[:MAX_CHILDREN_STATE]]
    assert kept[0]["content"] == {
        "via": [f"s{i}.example.org" for i in range(MAX_VIA_SERVERS)], "order": "00000",
    }


def test_what_is_not_a_summary_of_the_room() -> None:
    assert clean_remote_summary("room") is None
    assert clean_remote_summary({"room_id": ROOM, "num_joined_members": 1}, CHILD) is None
    assert clean_remote_summary({"room_id": "room", "num_joined_members": 1}) is None
    assert clean_remote_summary({"room_id": ROOM, "num_joined_members": -1}) is None
    assert clean_remote_summary({"room_id": ROOM, "num_joined_members": True}) is None
    assert clean_remote_summary({"room_id": ROOM, "num_joined_members": 0}) == {
        "room_id": ROOM, "num_joined_members": 0, "world_readable": False,
        "guest_can_join": False,
    }
