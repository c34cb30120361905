"""Ignoring users (spec "Ignoring Users"): `m.ignored_user_list` hides an ignored user's
events (not their state events) and invites from /sync, /messages and /context, from the
next sync after the list changes."""

from __future__ import annotations

import json
from typing import Any

from tests.helpers import MatrixApi, User


async def ignore(api: MatrixApi, user: User, *ignored: User) -> None:
    await api.ok(
        "PUT", f"user/{user.user_id}/account_data/m.ignored_user_list",
        json={"ignored_users": {u.user_id: {} for u in ignored}}, token=user.token,
    )


def senders(events: list[dict[str, Any]]) -> list[str]:
    return [e["sender"] for e in events if e["type"] == "m.room.message"]


async def test_ignored_users_events_and_invites_are_dropped(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room_id = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room_id)
    await api.send_message(bob, room_id, "before")
    since = (await api.sync(alice))["next_batch"]

    await ignore(api, alice, bob)
    # The change itself reaches the next sync, and from then on bob's messages are dropped.
    body = await api.sync(alice, since=since)
    assert [e["type"] for e in body["account_data"]["events"]] == ["m.ignored_user_list"]
    since = body["next_batch"]
    await api.send_message(bob, room_id, "ignored")
    await api.ok(
        "PUT", f"rooms/{room_id}/state/m.room.member/{bob.user_id}",
        json={"membership": "join", "displayname": "Bob"}, token=bob.token,
    )
    mine = await api.send_message(alice, room_id, "mine")
    body = await api.sync(alice, since=since)
    events = body["rooms"]["join"][room_id]["timeline"]["events"]
    assert senders(events) == [alice.user_id]
    assert any(  # state events still arrive
        e["type"] == "m.room.member" and e["sender"] == bob.user_id for e in events
    )

    full = await api.sync(alice)
    events = full["rooms"]["join"][room_id]["timeline"]["events"]
    assert senders(events) == [alice.user_id]

    chunk = (await api.ok(
        "GET", f"rooms/{room_id}/messages", token=alice.token, params={"dir": "b"},
    ))["chunk"]
    assert senders(chunk) == [alice.user_id]
    context = await api.ok("GET", f"rooms/{room_id}/context/{mine}", token=alice.token)
    assert senders(context["events_before"] + context["events_after"]) == []

    # An invite from bob never shows; one from carol does.
    since = full["next_batch"]
    carol = await api.register("carol")
    bobs_room = await api.create_room(bob)
    await api.invite(bob, bobs_room, alice)
    carols_room = await api.create_room(carol)
    await api.invite(carol, carols_room, alice)
    body = await api.sync(alice, since=since)
    assert set(body["rooms"]["invite"]) == {carols_room}
    assert set((await api.sync(alice))["rooms"]["invite"]) == {carols_room}

    # Un-ignoring takes effect on the next sync.
    since = body["next_batch"]
    await ignore(api, alice)
    await api.send_message(bob, room_id, "heard again")
    body = await api.sync(alice, since=since)
    assert senders(body["rooms"]["join"][room_id]["timeline"]["events"]) == [bob.user_id]


async def test_a_room_with_only_ignored_news_is_not_shown(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room_id = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room_id)
    await ignore(api, alice, bob)
    since = (await api.sync(alice))["next_batch"]
    await api.send_message(bob, room_id, "ignored")
    body = await api.sync(alice, since=since, filter=json.dumps({"presence": {"types": []}}))
    assert room_id not in body["rooms"]["join"]


async def test_ignored_users_messages_do_not_notify(api: MatrixApi) -> None:
    alice, bob, carol = [await api.register(n) for n in ("alice", "bob", "carol")]
    room_id = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room_id)
    await api.join(carol, room_id)
    await ignore(api, alice, bob)
    await api.send_message(bob, room_id, "ignored")
    for user, count in ((alice, 0), (carol, 1)):
        room = (await api.sync(user))["rooms"]["join"][room_id]
        assert room["unread_notifications"]["notification_count"] == count, user.user_id
    bobs_room = await api.create_room(bob)
    await api.invite(bob, bobs_room, alice)
    notified = await api.ok("GET", "notifications", token=alice.token)
    assert [n["event"]["sender"] for n in notified["notifications"]] == []


async def test_a_changed_ignore_list_applies_to_the_next_messages_notifications(
    api: MatrixApi,
) -> None:
    """The lists the push rules consult are held in memory: each change replaces the held
    one, both ways."""
    alice, bob = [await api.register(n) for n in ("alice", "bob")]
    room_id = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room_id)

    async def notified() -> int:
        room = (await api.sync(alice))["rooms"]["join"][room_id]
        count: int = room["unread_notifications"]["notification_count"]
        return count

    await api.send_message(bob, room_id, "heard")
    assert await notified() == 1
    await ignore(api, alice, bob)
    await api.send_message(bob, room_id, "ignored")
    assert await notified() == 1
    await ignore(api, alice)
    await api.send_message(bob, room_id, "heard again")
    assert await notified() == 2
