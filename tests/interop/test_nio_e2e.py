"""End to end with an unmodified matrix-nio client: what a real client library sends and expects.

Alice and Bob register, Alice creates a room and invites Bob, Bob sees the invite through /sync
and joins, both talk, each receives the other's messages through /sync, and Bob pages the history
back with /messages. nio's own room model must then agree with what the server said.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import nio

from tests.conftest import RunningServer
from tests.helpers import PASSWORD
from tests.nio_clients import SYNC_DEADLINE_S, SYNC_TIMEOUT_MS, ok, register


async def sync_until(
    client: nio.AsyncClient, done: Callable[[nio.AsyncClient], bool], what: str
) -> None:
    """Long-poll /sync until `done(client)` holds, or fail after an overall deadline."""
    deadline = time.monotonic() + SYNC_DEADLINE_S
    while not done(client):
        assert time.monotonic() < deadline, f"{client.user_id}: never saw {what}"
        ok(await client.sync(timeout=SYNC_TIMEOUT_MS), f"{client.user_id} sync")


async def test_register_invite_join_talk_and_paginate(
    clients: Callable[[str], nio.AsyncClient], homeserver: RunningServer,
) -> None:
    alice, bob = clients("alice"), clients("bob")
    await register(alice)
    await register(bob)
    assert alice.user_id == f"@alice:{homeserver.server_name}"

    created = ok(await alice.room_create(name="Tea", topic="leaves"), "room_create")
    assert isinstance(created, nio.RoomCreateResponse)
    room_id = created.room_id
    ok(await alice.room_invite(room_id, bob.user_id), "room_invite")

    await sync_until(bob, lambda c: room_id in c.invited_rooms, "the invite")
    assert bob.invited_rooms[room_id].inviter == alice.user_id  # from the stripped state
    ok(await bob.join(room_id), "join")
    await sync_until(bob, lambda c: room_id in c.rooms, "the joined room")

    sent: list[tuple[nio.AsyncClient, str]] = []
    for i in range(3):
        for client in (alice, bob):
            body = f"{client.user} says {i}"
            ok(await client.room_send(
                room_id, "m.room.message", {"msgtype": "m.text", "body": body}
            ), "room_send")
            sent.append((client, body))

    received: dict[str, list[str]] = {alice.user_id: [], bob.user_id: []}

    for client in (alice, bob):
        def on_text(room: nio.MatrixRoom, event: nio.RoomMessageText, c: Any = client) -> None:
            if room.room_id == room_id:
                received[c.user_id].append(event.body)
        client.add_event_callback(on_text, nio.RoomMessageText)

    others = {
        client.user_id: [b for sender, b in sent if sender is not client] for client in (alice, bob)
    }
    for client in (alice, bob):
        await sync_until(
            client, lambda c: set(others[c.user_id]) <= set(received[c.user_id]),
            "the other's messages",
        )
        mine = received[client.user_id]
        assert [b for b in mine if b in others[client.user_id]] == others[client.user_id]

    # Bob pages the whole history back from where his sync stands, oldest last.
    history: list[str] = []
    token: str | None = bob.next_batch
    while token is not None:
        page = ok(
            await bob.room_messages(room_id, start=token, limit=4), "room_messages"
        )
        assert isinstance(page, nio.RoomMessagesResponse)
        history += [e.body for e in page.chunk if isinstance(e, nio.RoomMessageText)]
        token = page.end if page.chunk else None
    assert history[::-1] == [body for _, body in sent]

    for client in (alice, bob):
        room = client.rooms[room_id]
        assert room.name == "Tea"
        assert room.topic == "leaves"
        assert room.member_count == 2
        assert room.joined_count == 2
        assert room.invited_count == 0
        assert set(room.users) == {alice.user_id, bob.user_id}
        assert room.user_name(alice.user_id) == "alice"
        assert room.user_name(bob.user_id) == "bob"
        assert room.room_version == "12"
        assert room.join_rule == "invite"  # the private_chat preset nio's default implies
        assert room.display_name == "Tea"


async def test_login_whoami_logout(
    clients: Callable[[str], nio.AsyncClient],
) -> None:
    first = clients("carol")
    await register(first)

    client = clients("carol")
    login = ok(await client.login(PASSWORD, device_name="laptop"), "login")
    assert isinstance(login, nio.LoginResponse)
    assert login.user_id == first.user_id
    assert login.device_id and login.device_id != first.device_id

    whoami = ok(await client.whoami(), "whoami")
    assert isinstance(whoami, nio.WhoamiResponse)
    assert whoami.user_id == first.user_id
    assert whoami.device_id == login.device_id

    ok(await client.logout(), "logout")
    client.access_token = login.access_token  # nio forgets the token; the server must too
    dead = await client.whoami()
    assert isinstance(dead, nio.WhoamiError)
    assert dead.status_code == "M_UNKNOWN_TOKEN"
    # The other device's session is untouched.
    assert isinstance(ok(await first.whoami(), "whoami"), nio.WhoamiResponse)
