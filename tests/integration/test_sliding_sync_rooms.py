"""Simplified sliding sync room results: every field of a room, how membership changes move
rooms in and out of lists, room subscriptions and `unsubscribe_rooms`.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import MatrixApi, User
from tests.sliding_sync import (
    Connection,
    bodies,
    count,
    expanded,
    one_list,
    room_list,
    rooms,
    state_pairs,
    subscription,
    timeline,
    woken,
)

pytestmark = pytest.mark.usefixtures("no_server_errors")

AVATAR = "mxc://localhost/tea"


def member_events(events: list[dict[str, Any]], user: User) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == "m.room.member" and e["state_key"] == user.user_id]


async def users(api: MatrixApi, *names: str) -> list[User]:
    return [await api.register(name) for name in names]


async def test_fields_of_a_joined_room(api: MatrixApi) -> None:
    alice, bob, carol = await users(api, "alice", "bob", "carol")
    room_id = await api.create_room(alice, preset="public_chat", name="Tea")
    await api.ok("PUT", f"rooms/{room_id}/state/m.room.avatar/", token=alice.token,
                 json={"url": AVATAR})
    await api.join(bob, room_id)
    await api.invite(alice, room_id, carol)
    await api.send_message(bob, room_id, "hello")
    room = rooms(await Connection(api, alice, one_list(timeline_limit=2)).sync())[room_id]
    assert room["name"] == "Tea"
    assert room["avatar"] == AVATAR
    assert "heroes" not in room  # named rooms need none
    assert room["initial"] is True
    assert (room["joined_count"], room["invited_count"]) == (2, 1)
    assert isinstance(room["notification_count"], int)
    assert isinstance(room["highlight_count"], int)
    assert isinstance(room["bump_stamp"], int)
    assert bodies(room) == ["hello"] and len(timeline(room)) == 2
    assert room["limited"] is True and room["prev_batch"]
    assert room.get("is_dm", False) is False
    assert "invite_state" not in room and "knock_state" not in room


async def test_a_first_response_shows_state_and_counts_as_they_are_now(api: MatrixApi) -> None:
    """The server keeps rooms' state entries and member counts in memory between responses:
    each change reaches the next first response (a rename, an avatar removed, encryption
    turned on, a join, an invite, a new display name, a redacted name)."""
    alice, bob, carol = await users(api, "alice", "bob", "carol")
    room_id = await api.create_room(alice, preset="public_chat", name="Tea")
    await api.ok("PUT", f"rooms/{room_id}/state/m.room.avatar/", token=alice.token,
                 json={"url": AVATAR})
    body = one_list(timeline_limit=1, required_state=[
        ["m.room.name", ""], ["m.room.avatar", ""], ["m.room.encryption", ""],
        ["m.room.member", "$LAZY"],
    ])

    async def first() -> dict[str, Any]:
        return rooms(await Connection(api, alice, body).sync())[room_id]

    room = await first()
    assert (room["name"], room["avatar"]) == ("Tea", AVATAR)
    assert (room["joined_count"], room["invited_count"]) == (1, 0)
    assert ("m.room.encryption", "") not in state_pairs(room)
    name_id = (await api.ok("PUT", f"rooms/{room_id}/state/m.room.name/", token=alice.token,
                            json={"name": "Coffee"}))["event_id"]
    await api.ok("PUT", f"rooms/{room_id}/state/m.room.avatar/", token=alice.token, json={})
    await api.ok("PUT", f"rooms/{room_id}/state/m.room.encryption/", token=alice.token,
                 json={"algorithm": "m.megolm.v1.aes-sha2"})
    await api.join(bob, room_id)
    await api.invite(alice, room_id, carol)
    await api.send_message(bob, room_id, "hello")
    room = await first()
    assert room["name"] == "Coffee" and "avatar" not in room
    assert (room["joined_count"], room["invited_count"]) == (2, 1)
    assert ("m.room.encryption", "") in state_pairs(room)
    assert member_events(room["required_state"], bob)[0]["content"]["displayname"] == "bob"
    await api.ok("PUT", f"rooms/{room_id}/state/m.room.member/{bob.user_id}", token=bob.token,
                 json={"membership": "join", "displayname": "Bobby"})
    await api.send_message(bob, room_id, "renamed")
    room = await first()
    [bob_now] = member_events(room["required_state"], bob)
    assert bob_now["content"]["displayname"] == "Bobby"
    await api.ok("PUT", f"rooms/{room_id}/redact/{name_id}/r1", token=alice.token, json={})
    room = await first()
    assert "name" not in room
    [name] = [e for e in room["required_state"] if e["type"] == "m.room.name"]
    assert name["content"] == {} and name["unsigned"]["redacted_because"]


async def test_heroes_of_an_unnamed_room(api: MatrixApi) -> None:
    alice, bob, carol = await users(api, "alice", "bob", "carol")
    room_id = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room_id)
    await api.ok("PUT", f"profile/{carol.user_id}/avatar_url", token=carol.token,
                 json={"avatar_url": AVATAR})
    await api.join(carol, room_id)
    room = rooms(await Connection(api, alice, one_list()).sync())[room_id]
    assert "name" not in room
    heroes = {h["user_id"]: h for h in room["heroes"]}
    assert set(heroes) == {bob.user_id, carol.user_id}  # never the user themselves
    assert heroes[bob.user_id].get("displayname") == bob.user_id[1:].split(":")[0]
    assert heroes[carol.user_id].get("avatar_url") == AVATAR


async def test_a_delta_carries_only_what_changed(api: MatrixApi) -> None:
    alice, bob = await users(api, "alice", "bob")
    room_id = await api.create_room(alice, preset="public_chat", name="Tea")
    await api.ok("PUT", f"rooms/{room_id}/state/m.room.avatar/", token=alice.token,
                 json={"url": AVATAR})
    conn = Connection(api, alice, one_list())
    await conn.sync()
    await api.ok("PUT", f"rooms/{room_id}/state/m.room.name/", token=alice.token,
                 json={"name": "Coffee"})
    room = rooms(await conn.sync())[room_id]
    assert room["name"] == "Coffee"
    assert not room.get("initial")
    assert "avatar" not in room  # unchanged: omitted
    await api.join(bob, room_id)
    room = rooms(await conn.sync())[room_id]
    assert room["joined_count"] == 2


async def test_num_live_limited_and_prev_batch(api: MatrixApi) -> None:
    alice = (await users(api, "alice"))[0]
    room_id = await api.create_room(alice, preset="public_chat")
    for i in range(3):
        await api.send_message(alice, room_id, f"old{i}")
    conn = Connection(api, alice, one_list(timeline_limit=3))
    first = rooms(await conn.sync())[room_id]
    assert first.get("num_live", 0) == 0  # nothing happened since a previous request
    for i in range(2):
        await api.send_message(alice, room_id, f"new{i}")
    two = rooms(await conn.sync())[room_id]
    assert bodies(two) == ["new0", "new1"]
    assert (two["num_live"], two.get("limited", False)) == (2, False)
    for i in range(5):
        await api.send_message(alice, room_id, f"burst{i}")
    burst = rooms(await conn.sync())[room_id]
    assert bodies(burst) == ["burst2", "burst3", "burst4"]
    assert (burst["num_live"], burst["limited"]) == (3, True)
    # prev_batch continues right before the timeline.
    page = await api.ok("GET", f"rooms/{room_id}/messages", token=alice.token,
                        params={"from": burst["prev_batch"], "dir": "b", "limit": "2"})
    assert [e["content"]["body"] for e in page["chunk"]] == ["burst1", "burst0"]


async def test_own_events_carry_the_transaction_id_for_the_sending_device(api: MatrixApi) -> None:
    """Element X matches its local echo by `unsigned.transaction_id`: shown to the device that
    sent the event, to nobody else."""
    alice, bob = await users(api, "alice", "bob")
    alice_phone = await api.login(alice)
    room_id = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room_id)
    sent = await api.ok("PUT", f"rooms/{room_id}/send/m.room.message/echo-1", token=alice.token,
                        json={"msgtype": "m.text", "body": "echo"})

    async def unsigned(user: User) -> dict[str, Any]:
        answer = await Connection(api, user, one_list(timeline_limit=1)).sync()
        [event] = timeline(rooms(answer)[room_id])
        assert event["event_id"] == sent["event_id"]
        return dict(event.get("unsigned") or {})

    # Asked twice each, the other device first: the answer is remembered per device.
    for _ in range(2):
        assert "transaction_id" not in await unsigned(alice_phone)
        assert (await unsigned(alice)).get("transaction_id") == "echo-1"
        assert "transaction_id" not in await unsigned(bob)


async def test_notification_and_highlight_counts_match_sync(api: MatrixApi) -> None:
    alice, bob = await users(api, "alice", "bob")
    room_id = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room_id)
    await api.send_message(alice, room_id, "plain")
    await api.ok("PUT", f"rooms/{room_id}/send/m.room.message/mention", token=alice.token,
                 json={"msgtype": "m.text", "body": "hey bob",
                       "m.mentions": {"user_ids": [bob.user_id]}})
    expected = (await api.sync(bob))["rooms"]["join"][room_id]["unread_notifications"]
    assert expected["notification_count"] >= 2 and expected["highlight_count"] >= 1
    conn = Connection(api, bob, one_list())
    room = rooms(await conn.sync())[room_id]
    assert (room["notification_count"], room["highlight_count"]) == (
        expected["notification_count"], expected["highlight_count"])
    # Read up to the end, then one more plain message: the counts start again from it.
    last = timeline(room)[-1]["event_id"]
    await api.ok("POST", f"rooms/{room_id}/receipt/m.read/{last}", json={}, token=bob.token)
    await api.send_message(alice, room_id, "one more")
    room = rooms(await conn.sync())[room_id]
    assert (room["notification_count"], room["highlight_count"]) == (1, 0)


async def test_invite_state_of_an_invited_room(api: MatrixApi) -> None:
    alice, bob = await users(api, "alice", "bob")
    room_id = await api.create_room(alice, preset="private_chat", name="Secret")
    await api.send_message(alice, room_id, "not for invitees")
    await api.invite(alice, room_id, bob)
    room = rooms(await Connection(api, bob, one_list(
        timeline_limit=5, required_state=[["*", "*"]])).sync())[room_id]
    stripped = room["invite_state"]
    assert {("m.room.create", ""), ("m.room.name", "")} <= state_pairs(
        {"required_state": stripped})
    mine = member_events(stripped, bob)
    assert mine and mine[0]["content"]["membership"] == "invite"
    assert mine[0]["sender"] == alice.user_id
    assert all(set(e) <= {"type", "state_key", "content", "sender"} for e in stripped)
    # Nothing of the room itself reaches an invitee.
    assert "not for invitees" not in str(room)
    assert not room.get("timeline") and not room.get("required_state")
    assert isinstance(room.get("bump_stamp", 0), int)


async def test_knock_state_of_a_knocked_room(api: MatrixApi) -> None:
    alice, bob = await users(api, "alice", "bob")
    room_id = await api.create_room(alice, preset="private_chat", name="Door", initial_state=[
        {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}])
    await api.ok("POST", f"knock/{room_id}", json={"reason": "let me in"}, token=bob.token)
    room = rooms(await Connection(api, bob, one_list()).sync())[room_id]
    # MSC3575 names it knock_state; Synapse serves knocks under invite_state.
    stripped = room.get("knock_state") or room.get("invite_state")
    assert stripped, room
    assert ("m.room.create", "") in state_pairs({"required_state": stripped})
    mine = member_events(stripped, bob)
    assert mine and mine[0]["content"]["membership"] == "knock"
    assert not room.get("timeline")


async def test_is_dm_changes_in_a_delta(api: MatrixApi) -> None:
    alice, bob = await users(api, "alice", "bob")
    room_id = await api.create_room(alice, preset="public_chat")
    conn = Connection(api, alice, one_list())
    assert rooms(await conn.sync())[room_id].get("is_dm", False) is False
    await api.ok("PUT", f"user/{alice.user_id}/account_data/m.direct", token=alice.token,
                 json={bob.user_id: [room_id]})
    await api.send_message(alice, room_id, "now a DM")
    assert rooms(await conn.sync())[room_id]["is_dm"] is True


async def test_expanded_timeline_when_the_limit_grows(api: MatrixApi) -> None:
    alice = (await users(api, "alice"))[0]
    room_id = await api.create_room(alice, preset="public_chat")
    for i in range(6):
        await api.send_message(alice, room_id, f"m{i}")
    conn = Connection(api, alice, one_list(timeline_limit=1))
    first = rooms(await conn.sync())[room_id]
    assert bodies(first) == ["m5"] and not expanded(first)
    # The room comes again at once (no new event), with the larger window.
    conn.body = one_list(timeline_limit=4)
    room = rooms(await conn.sync())[room_id]
    assert bodies(room) == ["m2", "m3", "m4", "m5"]
    assert expanded(room)
    assert not room.get("initial")
    # Once sent, the same limit adds nothing.
    assert room_id not in rooms(await conn.sync())


# -- membership changes move rooms in and out of lists ------------------------------------------


async def test_an_invite_then_a_join_then_a_leave(api: MatrixApi) -> None:
    alice, bob = await users(api, "alice", "bob")
    room_id = await api.create_room(alice, preset="public_chat", name="Club")
    await api.send_message(alice, room_id, "earlier")
    conn = Connection(api, bob, one_list(timeline_limit=3, required_state=[["m.room.name", ""]]))
    assert count(await conn.sync(), "l") == 0

    await api.invite(alice, room_id, bob)
    invited = await conn.sync()
    assert "invite_state" in rooms(invited)[room_id] and count(invited, "l") == 1

    await api.join(bob, room_id)
    joined = rooms(await conn.sync())[room_id]
    # The first time the room is sent as joined: full, with its state and history.
    assert joined["initial"] is True
    assert "invite_state" not in joined
    assert ("m.room.name", "") in state_pairs(joined)
    assert member_events(timeline(joined), bob)[-1]["content"]["membership"] == "join"

    await api.ok("POST", f"rooms/{room_id}/leave", json={}, token=bob.token)
    await api.send_message(alice, room_id, "after bob left")
    left = rooms(await conn.sync())[room_id]
    assert member_events(timeline(left), bob)[-1]["content"]["membership"] == "leave"
    assert "after bob left" not in bodies(left)
    # A room the user left is not listed on a new connection.
    fresh = await Connection(api, bob, one_list()).sync()
    assert room_id not in rooms(fresh) and count(fresh, "l") == 0


async def test_joining_moves_a_room_from_the_invite_list_to_the_joined_list(
    api: MatrixApi
) -> None:
    alice, bob = await users(api, "alice", "bob")
    room_id = await api.create_room(alice, preset="public_chat")
    conn = Connection(api, bob, {"lists": {
        "invites": room_list(filters={"is_invite": True}),
        "joined": room_list(filters={"is_invite": False}),
    }})
    await conn.sync()
    await api.invite(alice, room_id, bob)
    invited = await conn.sync()
    assert (count(invited, "invites"), count(invited, "joined")) == (1, 0)
    assert "invite_state" in rooms(invited)[room_id]
    await api.join(bob, room_id)
    joined = await conn.sync()
    assert (count(joined, "invites"), count(joined, "joined")) == (0, 1)
    assert rooms(joined)[room_id]["initial"] is True
    assert rooms(joined)[room_id]["joined_count"] == 2


@pytest.mark.parametrize("action", ["kick", "ban"])
async def test_a_kick_or_ban_is_sent_and_stays_listed(api: MatrixApi, action: str) -> None:
    alice, bob = await users(api, "alice", "bob")
    room_id = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room_id)
    conn = Connection(api, bob, one_list(timeline_limit=3))
    await conn.sync()
    await api.ok("POST", f"rooms/{room_id}/{action}", token=alice.token,
                 json={"user_id": bob.user_id, "reason": "test"})
    await api.send_message(alice, room_id, "behind bob's back")
    room = rooms(await conn.sync())[room_id]
    membership = member_events(timeline(room), bob)[-1]
    assert membership["content"]["membership"] == {"kick": "leave", "ban": "ban"}[action]
    assert membership["sender"] == alice.user_id
    assert "behind bob's back" not in bodies(room)
    # Kicked and banned rooms stay in the list (the user may not have seen why they left).
    fresh = await Connection(api, bob, one_list(timeline_limit=3)).sync()
    assert room_id in rooms(fresh) and count(fresh, "l") == 1
    assert "behind bob's back" not in str(rooms(fresh)[room_id])


async def test_a_rejected_invite_leaves_the_invite_list(api: MatrixApi) -> None:
    alice, bob = await users(api, "alice", "bob")
    room_id = await api.create_room(alice, preset="public_chat")
    await api.invite(alice, room_id, bob)
    conn = Connection(api, bob, one_list(filters={"is_invite": True}))
    assert count(await conn.sync(), "l") == 1
    await api.ok("POST", f"rooms/{room_id}/leave", json={}, token=bob.token)
    answer = await conn.sync()
    assert count(answer, "l") == 0


async def test_a_banned_room_never_joined_is_not_listed(api: MatrixApi) -> None:
    alice, bob = await users(api, "alice", "bob")
    room_id = await api.create_room(alice, preset="public_chat")
    await api.ok("POST", f"rooms/{room_id}/ban", token=alice.token,
                 json={"user_id": bob.user_id})
    answer = await Connection(api, bob, one_list()).sync()
    assert room_id not in rooms(answer) and count(answer, "l") == 0


# -- room subscriptions ------------------------------------------------------------------------


async def test_a_subscription_sends_a_room_outside_every_list(api: MatrixApi) -> None:
    alice = (await users(api, "alice"))[0]
    quiet = await api.create_room(alice, preset="public_chat", name="Quiet")
    for i in range(3):
        await api.send_message(alice, quiet, f"q{i}")
    busy = await api.create_room(alice, preset="public_chat")
    await api.send_message(alice, busy, "busy")
    conn = Connection(api, alice, {
        "lists": {"top": room_list(ranges=[[0, 0]], timeline_limit=1)},
        "room_subscriptions": {quiet: subscription(
            timeline_limit=2, required_state=[["m.room.name", ""]])},
    })
    answer = await conn.sync()
    assert set(rooms(answer)) == {busy, quiet}
    assert bodies(rooms(answer)[quiet]) == ["q1", "q2"]
    assert state_pairs(rooms(answer)[quiet]) == {("m.room.name", "")}
    await api.send_message(alice, quiet, "q3")
    assert bodies(rooms(await conn.sync())[quiet]) == ["q3"]


async def test_subscriptions_to_rooms_one_cannot_see_are_ignored(api: MatrixApi) -> None:
    alice, bob = await users(api, "alice", "bob")
    private = await api.create_room(alice, preset="private_chat", name="Private")
    await api.send_message(alice, private, "secret")
    answer = await Connection(api, bob, {"room_subscriptions": {
        private: subscription(timeline_limit=5, required_state=[["*", "*"]]),
        "!nowhere:localhost": subscription(),
    }}).sync()
    assert rooms(answer) == {}
    assert "secret" not in str(answer)


async def test_unsubscribe_rooms_stops_a_subscription(api: MatrixApi) -> None:
    alice = (await users(api, "alice"))[0]
    room_id = await api.create_room(alice, preset="public_chat")
    conn = Connection(api, alice, {"room_subscriptions": {room_id: subscription()}})
    await conn.sync()
    conn.body = {"unsubscribe_rooms": [room_id]}
    await conn.sync()
    conn.body = {}
    missed = await api.send_message(alice, room_id, "while unsubscribed")
    assert rooms(await conn.sync()) == {}
    # Subscribing again brings the room back without losing what came meanwhile.
    conn.body = {"room_subscriptions": {room_id: subscription(timeline_limit=5)}}
    room = rooms(await conn.sync())[room_id]
    assert missed in [e["event_id"] for e in timeline(room)]


async def test_an_unsubscribed_room_does_not_wake_a_long_poll(api: MatrixApi) -> None:
    alice = (await users(api, "alice"))[0]
    followed = await api.create_room(alice, preset="public_chat")
    dropped = await api.create_room(alice, preset="public_chat")
    conn = Connection(api, alice, {"room_subscriptions": {
        followed: subscription(), dropped: subscription()}})
    await conn.sync()
    conn.body = {"room_subscriptions": {followed: subscription()},
                 "unsubscribe_rooms": [dropped]}
    await conn.sync()
    poll = await conn.waiting()
    await api.send_message(alice, dropped, "ignored")
    event_id = await api.send_message(alice, followed, "wakes")
    answer = await woken(poll)
    assert set(rooms(answer)) == {followed}
    assert event_id in [e["event_id"] for e in timeline(rooms(answer)[followed])]
