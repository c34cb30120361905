"""Issue 3 acceptance: an unmodified matrix-nio client sees `notification_count` rise on a
mention and fall after a read receipt, through nio's own parsing of /sync."""

from __future__ import annotations

from collections.abc import AsyncIterator

import nio
import pytest

from tests.conftest import RunningServer
from tests.nio_clients import (
    new_client,
    ok,
    register,
    sync_counts_until,
)


@pytest.fixture
async def pair(homeserver: RunningServer) -> AsyncIterator[tuple[nio.AsyncClient, nio.AsyncClient]]:
    alice, bob = new_client(homeserver, "alice"), new_client(homeserver, "bob")
    yield alice, bob
    await alice.close()
    await bob.close()


async def test_mention_raises_and_receipt_clears_unread_counts(
    pair: tuple[nio.AsyncClient, nio.AsyncClient],
) -> None:
    alice, bob = pair
    await register(alice)
    await register(bob)
    created = ok(await alice.room_create(visibility=nio.RoomVisibility.public), "room_create")
    assert isinstance(created, nio.RoomCreateResponse)
    room_id = created.room_id
    ok(await bob.join(room_id), "join")
    await sync_counts_until(alice, room_id, lambda c: c == (0, 0), "the room")

    sent = ok(await bob.room_send(room_id, "m.room.message", {
        "msgtype": "m.text", "body": "alice, lunch?",
        "m.mentions": {"user_ids": [alice.user_id]},
    }), "room_send")
    assert isinstance(sent, nio.RoomSendResponse)
    counts = await sync_counts_until(alice, room_id, lambda c: (c[0] or 0) > 0, "the mention")
    assert counts == (1, 1)

    ok(await alice.update_receipt_marker(room_id, sent.event_id), "receipt")
    assert await sync_counts_until(alice, room_id, lambda c: c[0] == 0, "the reset") == (0, 0)
