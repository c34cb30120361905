"""Simplified sliding sync lists: ranges over the rooms sorted by recency, `count`,
`timeline_limit`, `required_state` (pairs, "*", "$LAZY", "$ME") and the filters.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import MatrixApi, User
from tests.sliding_sync import (
    Connection,
    bodies,
    count,
    one_list,
    ordered,
    room_list,
    rooms,
    state_pairs,
    timeline,
)

pytestmark = pytest.mark.usefixtures("no_server_errors")

CREATE = ("m.room.create", "")


async def rooms_by_recency(api: MatrixApi, user: User, n: int) -> list[str]:
    """`n` rooms of `user`, most recent first (each got a message, in reverse order)."""
    created = [await api.create_room(user, preset="public_chat", name=f"r{i}") for i in range(n)]
    for room_id in reversed(created):
        await api.send_message(user, room_id, "bump")
    return created


async def test_ranges_pick_rooms_by_recency_and_count_counts_them_all(api: MatrixApi) -> None:
    alice = await api.register("alice")
    recent = await rooms_by_recency(api, alice, 5)
    cases = [
        ([[0, 1]], recent[0:2]),
        ([[2, 3]], recent[2:4]),
        ([[0, 0], [4, 4]], [recent[0], recent[4]]),
        ([[3, 100]], recent[3:]),
        ([[10, 20]], []),
    ]
    for ranges, expected in cases:
        answer = await Connection(api, alice, one_list(ranges=ranges)).sync()
        assert set(rooms(answer)) == set(expected), ranges
        assert count(answer, "l") == 5, ranges
        # Synapse's MSC3575 ops (not needed, but when sent they must list the window in order).
        ops = answer["lists"]["l"].get("ops")
        if ops is not None and len(ranges) == 1:
            assert [op["room_ids"] for op in ops] == [expected], ranges
    everything = await Connection(api, alice, one_list(ranges=[[0, 4]])).sync()
    assert ordered(everything) == recent
    stamps = [rooms(everything)[r]["bump_stamp"] for r in recent]
    assert stamps == sorted(stamps, reverse=True) and len(set(stamps)) == 5


async def test_a_list_without_ranges_has_every_room(api: MatrixApi) -> None:
    alice = await api.register("alice")
    recent = await rooms_by_recency(api, alice, 3)
    answer = await Connection(api, alice, one_list(ranges=None)).sync()
    assert set(rooms(answer)) == set(recent)
    assert count(answer, "l") == 3


async def test_a_message_moves_a_room_into_the_window(api: MatrixApi) -> None:
    alice = await api.register("alice")
    recent = await rooms_by_recency(api, alice, 3)
    conn = Connection(api, alice, one_list(ranges=[[0, 0]], timeline_limit=3))
    assert set(rooms(await conn.sync())) == {recent[0]}
    event_id = await api.send_message(alice, recent[2], "up you go")
    answer = await conn.sync()
    assert set(rooms(answer)) == {recent[2]}
    room = rooms(answer)[recent[2]]
    assert room["initial"] is True  # never sent on this connection before
    assert timeline(room)[-1]["event_id"] == event_id
    assert count(answer, "l") == 3
    top_two = await Connection(api, alice, one_list(ranges=[[0, 1]])).sync()
    assert ordered(top_two) == [recent[2], recent[0]]


async def test_widening_the_range_sends_only_the_rooms_not_sent_yet(api: MatrixApi) -> None:
    alice = await api.register("alice")
    recent = await rooms_by_recency(api, alice, 4)
    conn = Connection(api, alice, one_list(ranges=[[0, 1]]))
    assert set(rooms(await conn.sync())) == set(recent[:2])
    conn.body = one_list(ranges=[[0, 3]])
    answer = await conn.sync()
    assert set(rooms(answer)) == set(recent[2:])
    assert all(r["initial"] is True for r in rooms(answer).values())


async def test_a_non_bumping_event_leaves_bump_stamp_and_order(api: MatrixApi) -> None:
    """bump_stamp is the stream order of the last event of a bumping type (m.room.message,
    m.room.encrypted, m.room.create, m.sticker, m.call.invite, m.poll.start, m.beacon_info);
    the list is sorted by it (issue 14), so a reaction or a topic change moves nothing."""
    alice = await api.register("alice")
    recent = await rooms_by_recency(api, alice, 2)
    newer, older = recent
    conn = Connection(api, alice, one_list(ranges=[[0, 1]], timeline_limit=1))
    first = await conn.sync()
    stamp = rooms(first)[older]["bump_stamp"]
    message_id = timeline(rooms(first)[older])[-1]["event_id"]
    await api.ok("PUT", f"rooms/{older}/send/m.reaction/r1", token=alice.token, json={
        "m.relates_to": {"rel_type": "m.annotation", "event_id": message_id, "key": "+1"}})
    await api.ok("PUT", f"rooms/{older}/state/m.room.topic/", token=alice.token,
                 json={"topic": "not news"})
    delta = await conn.sync()
    assert rooms(delta)[older].get("bump_stamp", stamp) == stamp
    top = await Connection(api, alice, one_list(ranges=[[0, 0]]), conn_id="top").sync()
    assert set(rooms(top)) == {newer}
    await api.send_message(alice, older, "news")
    assert rooms(await conn.sync())[older]["bump_stamp"] > stamp


async def test_timeline_limit(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room_id = await api.create_room(alice, preset="public_chat")
    for i in range(5):
        await api.send_message(alice, room_id, f"m{i}")
    two = rooms(await Connection(api, alice, one_list(timeline_limit=2)).sync())[room_id]
    assert bodies(two) == ["m3", "m4"] and len(timeline(two)) == 2
    assert two["limited"] is True
    assert two["prev_batch"]
    none = rooms(await Connection(api, alice, one_list(timeline_limit=0)).sync())[room_id]
    assert timeline(none) == []
    everything = rooms(await Connection(api, alice, one_list(timeline_limit=100)).sync())[room_id]
    assert timeline(everything)[0]["type"] == "m.room.create"
    assert bodies(everything) == [f"m{i}" for i in range(5)]
    assert everything.get("limited", False) is False


async def test_the_largest_timeline_limit_of_matching_lists_wins(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room_id = await api.create_room(alice, preset="public_chat")
    for i in range(4):
        await api.send_message(alice, room_id, f"m{i}")
    answer = await Connection(api, alice, {"lists": {
        "small": room_list(timeline_limit=1), "large": room_list(timeline_limit=3),
    }}).sync()
    assert bodies(rooms(answer)[room_id]) == ["m1", "m2", "m3"]


async def named_room_of_three(api: MatrixApi) -> tuple[User, User, User, str]:
    alice, bob, carol = [await api.register(n) for n in ("alice", "bob", "carol")]
    room_id = await api.create_room(alice, preset="public_chat", name="Three", topic="Tea")
    await api.join(bob, room_id)
    await api.join(carol, room_id)
    return alice, bob, carol, room_id


async def test_required_state_specific_pairs(api: MatrixApi) -> None:
    alice, bob, _, room_id = await named_room_of_three(api)
    state = [["m.room.name", ""], ["m.room.topic", ""], ["m.room.member", bob.user_id],
             ["m.room.avatar", ""]]  # no avatar: nothing to send for it
    room = rooms(await Connection(api, alice, one_list(required_state=state)).sync())[room_id]
    assert state_pairs(room) == {("m.room.name", ""), ("m.room.topic", ""),
                                 ("m.room.member", bob.user_id)}
    name = [e for e in room["required_state"] if e["type"] == "m.room.name"]
    assert name[0]["content"] == {"name": "Three"}
    assert rooms(await Connection(api, alice, one_list()).sync())[room_id].get(
        "required_state", []) == []


async def test_required_state_wildcards(api: MatrixApi) -> None:
    alice, bob, carol, room_id = await named_room_of_three(api)
    members = {("m.room.member", u.user_id) for u in (alice, bob, carol)}
    everything = rooms(await Connection(api, alice, one_list(
        required_state=[["*", "*"]])).sync())[room_id]
    assert {CREATE, ("m.room.power_levels", ""), ("m.room.join_rules", ""), ("m.room.name", ""),
            ("m.room.topic", "")} | members <= state_pairs(everything)
    all_members = rooms(await Connection(api, alice, one_list(
        required_state=[["m.room.member", "*"]])).sync())[room_id]
    assert state_pairs(all_members) == members


async def test_required_state_lazy_members_and_me(api: MatrixApi) -> None:
    alice, bob, carol, room_id = await named_room_of_three(api)
    await api.send_message(bob, room_id, "from bob")
    lazy = one_list(timeline_limit=1, required_state=[["m.room.member", "$LAZY"]])
    conn = Connection(api, alice, lazy)
    room = rooms(await conn.sync())[room_id]
    assert state_pairs(room) == {("m.room.member", bob.user_id)}
    # A new sender's membership follows in the delta; bob's is not sent again.
    await api.send_message(carol, room_id, "from carol")
    delta = rooms(await conn.sync())[room_id]
    assert state_pairs(delta) == {("m.room.member", carol.user_id)}
    me = rooms(await Connection(api, alice, one_list(
        timeline_limit=1, required_state=[["m.room.member", "$ME"]])).sync())[room_id]
    assert state_pairs(me) == {("m.room.member", alice.user_id)}


async def test_required_state_in_a_delta_is_what_changed(api: MatrixApi) -> None:
    alice, _, _, room_id = await named_room_of_three(api)
    conn = Connection(api, alice, one_list(required_state=[["m.room.name", ""],
                                                            ["m.room.topic", ""]]))
    await conn.sync()
    await api.ok("PUT", f"rooms/{room_id}/state/m.room.name/", token=alice.token,
                 json={"name": "Renamed"})
    await api.ok("PUT", f"rooms/{room_id}/state/m.room.history_visibility/", token=alice.token,
                 json={"history_visibility": "joined"})
    room = rooms(await conn.sync())[room_id]
    assert not room.get("initial")
    assert state_pairs(room) == {("m.room.name", "")}
    assert room["required_state"][0]["content"] == {"name": "Renamed"}
    assert room["name"] == "Renamed"


async def test_widened_required_state_sends_the_newly_wanted_state(api: MatrixApi) -> None:
    """MSC4186 "Changes to required_state": state the new config matches and the old did not
    is sent (Synapse: with the room's next update)."""
    alice, _, _, room_id = await named_room_of_three(api)
    conn = Connection(api, alice, one_list(required_state=[["m.room.name", ""]]))
    await conn.sync()
    conn.body = one_list(required_state=[["m.room.name", ""], ["m.room.topic", ""]])
    first = rooms(await conn.sync()).get(room_id)
    if first is None or ("m.room.topic", "") not in state_pairs(first):
        await api.send_message(alice, room_id, "an update")
        first = rooms(await conn.sync())[room_id]
    assert ("m.room.topic", "") in state_pairs(first)
    assert ("m.room.name", "") not in state_pairs(first)  # already sent, unchanged


# -- filters -----------------------------------------------------------------------------------


async def listed(api: MatrixApi, user: User, filters: dict[str, Any]) -> set[str]:
    answer = await Connection(api, user, one_list(ranges=[[0, 99]], filters=filters)).sync()
    assert count(answer, "l") == len(rooms(answer))
    return set(rooms(answer))


async def test_filter_is_dm_follows_m_direct(api: MatrixApi) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    dm = await api.create_room(alice, preset="trusted_private_chat", is_direct=True,
                               invite=[bob.user_id])
    group = await api.create_room(alice, preset="public_chat")
    await api.ok("PUT", f"user/{alice.user_id}/account_data/m.direct", token=alice.token,
                 json={bob.user_id: [dm]})
    assert await listed(api, alice, {"is_dm": True}) == {dm}
    assert await listed(api, alice, {"is_dm": False}) == {group}
    assert await listed(api, alice, {}) == {dm, group}
    answer = await Connection(api, alice, one_list()).sync()
    assert rooms(answer)[dm]["is_dm"] is True
    assert rooms(answer)[group].get("is_dm", False) is False


ENCRYPTION = [{"type": "m.room.encryption", "state_key": "",
               "content": {"algorithm": "m.megolm.v1.aes-sha2"}}]


async def test_filter_is_encrypted(api: MatrixApi) -> None:
    alice = await api.register("alice")
    encrypted = await api.create_room(alice, preset="private_chat", initial_state=ENCRYPTION)
    plain = await api.create_room(alice, preset="public_chat")
    assert await listed(api, alice, {"is_encrypted": True}) == {encrypted}
    assert await listed(api, alice, {"is_encrypted": False}) == {plain}


async def test_filter_is_invite(api: MatrixApi) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    invited = await api.create_room(alice, preset="public_chat")
    await api.invite(alice, invited, bob)
    joined = await api.create_room(bob, preset="public_chat")
    assert await listed(api, bob, {"is_invite": True}) == {invited}
    assert await listed(api, bob, {"is_invite": False}) == {joined}
    assert await listed(api, bob, {}) == {invited, joined}


async def test_filter_room_types(api: MatrixApi) -> None:
    alice = await api.register("alice")
    space = await api.create_room(alice, preset="public_chat",
                                  creation_content={"type": "m.space"})
    custom = await api.create_room(alice, preset="public_chat",
                                   creation_content={"type": "org.example.board"})
    room = await api.create_room(alice, preset="public_chat")
    assert await listed(api, alice, {"room_types": ["m.space"]}) == {space}
    assert await listed(api, alice, {"room_types": [None]}) == {room}
    assert await listed(api, alice, {"room_types": [None, "org.example.board"]}) == {room, custom}
    assert await listed(api, alice, {"not_room_types": ["m.space"]}) == {room, custom}
    assert await listed(api, alice, {"not_room_types": [None]}) == {space, custom}
    # not_room_types wins over room_types.
    assert await listed(api, alice, {"room_types": ["m.space"],
                                     "not_room_types": ["m.space"]}) == set()


async def test_filters_combine_with_and(api: MatrixApi) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    encrypted_dm = await api.create_room(alice, preset="trusted_private_chat", is_direct=True,
                                         initial_state=ENCRYPTION)
    plain_dm = await api.create_room(alice, preset="public_chat")  # a DM by m.direct alone
    await api.create_room(alice, preset="private_chat")
    await api.ok("PUT", f"user/{alice.user_id}/account_data/m.direct", token=alice.token,
                 json={bob.user_id: [encrypted_dm, plain_dm]})
    assert await listed(api, alice, {"is_dm": True, "is_encrypted": True}) == {encrypted_dm}
    assert await listed(api, alice, {"is_dm": True, "is_encrypted": False}) == {plain_dm}


async def test_each_list_has_its_own_count(api: MatrixApi) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    for _ in range(2):
        room_id = await api.create_room(bob, preset="public_chat")
        await api.invite(bob, room_id, alice)
    for _ in range(3):
        await api.create_room(alice, preset="public_chat")
    answer = await Connection(api, alice, {"lists": {
        "invites": room_list(ranges=[[0, 0]], filters={"is_invite": True}),
        "joined": room_list(ranges=[[0, 0]], filters={"is_invite": False}),
        "all": room_list(ranges=[[0, 0]]),
    }}).sync()
    assert (count(answer, "invites"), count(answer, "joined"), count(answer, "all")) == (2, 3, 5)
