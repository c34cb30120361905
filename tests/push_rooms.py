"""A group room for push tests: three members, so the default group-chat push rules (not the
one-to-one ones) apply, and a way to send any event type into it."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from tests.helpers import MatrixApi, User

_txn = itertools.count()


@dataclass
class GroupRoom:
    alice: User
    bob: User
    carol: User
    room_id: str


async def group_room(
    api: MatrixApi, alice_displayname: str | None = None, **create: Any
) -> GroupRoom:
    """Alice creates the room (`create`: the createRoom body) and Bob and Carol join it.
    `alice_displayname` is set before the room exists, so no member event changes it later."""
    alice, bob, carol = [await api.register(n) for n in ("alice", "bob", "carol")]
    if alice_displayname is not None:
        await api.ok("PUT", f"profile/{quote(alice.user_id)}/displayname",
                     json={"displayname": alice_displayname}, token=alice.token)
    room_id = await api.create_room(alice, **create)
    await api.join(bob, room_id)
    await api.join(carol, room_id)
    return GroupRoom(alice, bob, carol, room_id)


async def send(api: MatrixApi, user: User, room_id: str, event_type: str, content: Any) -> str:
    """PUT one event of any type; its event ID."""
    body = await api.ok("PUT", f"rooms/{room_id}/send/{event_type}/push{next(_txn)}",
                        json=content, token=user.token)
    event_id: str = body["event_id"]
    return event_id
