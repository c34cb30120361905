"""The pure rules of Simplified Sliding Sync (homeserver/protocol/sliding_sync.py): request
validation, combining room configurations, required_state matching, range slicing, the pos
format and the connection state's JSON."""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.protocol.sliding_sync import (
    ConnectionState,
    ExtensionConfig,
    RoomConfig,
    SentRoom,
    StateWanted,
    combine,
    encode_pos,
    parse_pos,
    parse_request,
    pos_verifies,
    slice_ranges,
)

ME = "@me:x"


def test_a_full_request_parses() -> None:
    request = parse_request({
        "conn_id": "room-list",
        "lists": {"all": {
            "ranges": [[0, 19]], "timeline_limit": 1,
            "required_state": [["m.room.name", ""], ["m.room.member", "$LAZY"]],
            "filters": {"is_dm": True, "not_room_types": ["m.space", None]},
        }},
        "room_subscriptions": {"!a:x": {"timeline_limit": 20, "required_state": [["*", "*"]]}},
        "unsubscribe_rooms": ["!b:x"],
        "extensions": {"to_device": {"enabled": True, "since": "12", "limit": 500},
                       "receipts": {"enabled": True, "lists": ["all"], "rooms": ["*"]},
                       "org.example.unknown": {"enabled": True}},
        "org.example.field": 1,
    })
    assert request.conn_id == "room-list"
    config = request.lists["all"]
    assert config.ranges == ((0, 19),)
    assert config.room == RoomConfig(1, frozenset({("m.room.name", ""),
                                                   ("m.room.member", "$LAZY")}))
    assert config.filters.is_dm is True and config.filters.not_room_types == {"m.space", None}
    assert request.room_subscriptions["!a:x"].timeline_limit == 20
    assert request.unsubscribe_rooms == {"!b:x"}
    assert request.extensions.to_device == ExtensionConfig(True, since=12, limit=100)
    assert request.extensions.receipts.lists == ("all",)
    assert not request.extensions.typing.enabled


def test_an_empty_request_is_a_request_for_nothing() -> None:
    request = parse_request({})
    assert (request.lists, request.room_subscriptions, request.conn_id) == ({}, {}, "")
    assert parse_request({"lists": {"l": {}}}).lists["l"].ranges is None


BAD: list[tuple[Any, str]] = [
    ([], "body"),
    ({"lists": []}, "lists"),
    ({"lists": {"l": {"ranges": [[3, 1]]}}}, "starts after it ends"),
    ({"lists": {"l": {"ranges": [[0]]}}}, "pair"),
    ({"lists": {"l": {"ranges": [[-1, 4]]}}}, "non-negative"),
    ({"lists": {"l": {"ranges": [[True, 4]]}}}, "non-negative"),
    ({"lists": {"l": {"timeline_limit": -1}}}, "timeline_limit"),
    ({"lists": {"l": {"required_state": [["m.room.name"]]}}}, "pair"),
    ({"lists": {"l": {"filters": {"is_invite": None}}}}, "is_invite"),
    ({"lists": {"l": {"filters": {"room_types": [1]}}}}, "room_types"),
    ({"lists": {"x" * 65: {}}}, "64"),
    ({"room_subscriptions": {"not-a-room": {}}}, "room ID"),
    ({"extensions": {"typing": {"enabled": True, "lists": ["nope"]}}}, "not a list"),
    ({"extensions": {"receipts": {"rooms": ["nope"]}}}, "room ID"),
    ({"extensions": {"to_device": {"since": 5}}}, "since"),
    ({"extensions": {"to_device": {"limit": 0}}}, "positive"),
]


@pytest.mark.parametrize(("body", "message"), BAD)
def test_bad_requests_are_refused_with_a_reason(body: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_request(body)


def test_a_large_timeline_limit_is_served_as_the_maximum() -> None:
    assert parse_request({"lists": {"l": {"timeline_limit": 10**6}}}).lists["l"].room \
        .timeline_limit == 100


def test_combining_takes_the_largest_timeline_and_all_the_state() -> None:
    assert combine([
        RoomConfig(1, frozenset({("m.room.name", "")})),
        RoomConfig(20, frozenset({("m.room.topic", "")})),
    ]) == RoomConfig(20, frozenset({("m.room.name", ""), ("m.room.topic", "")}))
    assert combine([]) == RoomConfig()


def test_required_state_matching() -> None:
    wanted = StateWanted.of(
        [("m.room.name", ""), ("m.room.member", "$ME"), ("m.room.member", "$LAZY"),
         ("m.space.child", "*")], ME,
    )
    assert wanted.matches("m.room.name", "")
    assert not wanted.matches("m.room.name", "other")
    assert wanted.matches("m.room.member", ME)
    assert not wanted.matches("m.room.member", "@you:x")
    assert wanted.matches("m.room.member", "@you:x", lazy_members={"@you:x"})
    assert wanted.matches("m.space.child", "!any:x")
    assert not wanted.needs_full_state
    everything = StateWanted.of([("*", "*")], ME)
    assert everything.needs_full_state and everything.matches("m.anything", "k")
    any_type = StateWanted.of([("*", "")], ME)
    assert any_type.matches("m.room.topic", "") and not any_type.matches("m.room.member", ME)
    assert StateWanted.of([], ME).empty


def test_slicing_by_ranges_includes_both_ends_once() -> None:
    rooms = [f"!{i}:x" for i in range(10)]
    assert slice_ranges(rooms, [(0, 2)]) == rooms[:3]
    assert slice_ranges(rooms, [(8, 20)]) == rooms[8:]
    assert slice_ranges(rooms, [(5, 6), (0, 1), (6, 7)]) == [rooms[i] for i in (0, 1, 5, 6, 7)]
    assert slice_ranges(rooms, [(20, 30)]) == []


def test_pos_round_trips_sealed_and_garbage_is_refused() -> None:
    pos = encode_pos(42, "k3y", "s1_2_3")
    position_id, seal, token = parse_pos(pos)
    assert (position_id, token) == (42, "s1_2_3")
    assert "k3y" not in pos
    assert pos_verifies("k3y", 42, seal, "s1_2_3")
    assert not pos_verifies("k3y", 42, seal, "s1_2_4")  # an altered token
    assert not pos_verifies("k3y", 43, seal, "s1_2_3")  # another position
    assert not pos_verifies("other", 42, seal, "s1_2_3")  # another connection or server
    for bad in ("", "42", "42/s1", "x.k/s1", "42.k/", ".k/s1", "4" * 20 + ".k/s1"):
        with pytest.raises(ValueError):
            parse_pos(bad)


def test_connection_state_round_trips_through_json() -> None:
    state = ConnectionState(
        {
            "!a:x": SentRoom(True, "join", 0, RoomConfig(5, frozenset({("m.room.name", "")})),
                             frozenset({"@u:x"})),
            "!b:x": SentRoom(False, "invite", 17, RoomConfig()),
        },
        {"all": 2},
    )
    assert ConnectionState.from_json(state.to_json()) == state


def test_extension_scope_follows_lists_and_subscriptions() -> None:
    lists = {"a": ["!1:x", "!2:x"], "b": ["!3:x"]}
    assert ExtensionConfig(True).scope(lists, ["!9:x"]) == {"!1:x", "!2:x", "!3:x", "!9:x"}
    assert ExtensionConfig(True, lists=("b",), rooms=()).scope(lists, ["!9:x"]) == {"!3:x"}
    assert ExtensionConfig(True, lists=(), rooms=("!9:x", "!8:x")).scope(lists, ["!9:x"]) == {
        "!9:x"}
