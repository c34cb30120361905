"""Unread counts per thread (client-server-api "Threading", receipts "Threaded read receipts"):
`unread_thread_notifications` when the timeline filter asks for it, and receipts that read one
thread, the main timeline (`main`) or everything (unthreaded)."""

from __future__ import annotations

import json
from typing import Any

from tests.helpers import MatrixApi, User, validate_response

THREADED = json.dumps({"room": {"timeline": {"unread_thread_notifications": True}}})


async def counts(api: MatrixApi, user: User, room_id: str, *, threaded: bool) -> dict[str, Any]:
    params: dict[str, Any] = {"timeout": 0}
    if threaded:
        params["filter"] = THREADED
    body = await api.sync(user, **params)
    validate_response("sync.yaml", "/sync", "get", 200, body)
    room = body["rooms"]["join"][room_id]
    return {k: room[k] for k in ("unread_notifications", "unread_thread_notifications")
            if k in room}


def n(notifications: int) -> dict[str, int]:
    return {"notification_count": notifications, "highlight_count": 0}


async def reply(api: MatrixApi, user: User, room_id: str, root: str, text: str) -> str:
    body = await api.ok("POST", f"rooms/{room_id}/send/m.room.message", json={
        "msgtype": "m.text", "body": text,
        "m.relates_to": {"rel_type": "m.thread", "event_id": root},
    }, token=user.token)
    event_id: str = body["event_id"]
    return event_id


async def receipt(api: MatrixApi, user: User, room_id: str, event_id: str,
                  thread_id: str | None) -> None:
    body = {} if thread_id is None else {"thread_id": thread_id}
    await api.ok("POST", f"rooms/{room_id}/receipt/m.read/{event_id}", json=body,
                 token=user.token)


async def test_counts_are_split_by_thread_and_read_per_thread(api: MatrixApi) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    room_id = await api.create_room(alice)
    await api.invite(alice, room_id, bob)
    await api.join(bob, room_id)
    root = await api.send_message(alice, room_id, "root")
    await reply(api, alice, room_id, root, "one")
    latest = await reply(api, alice, room_id, root, "two")

    assert await counts(api, bob, room_id, threaded=True) == {
        "unread_notifications": n(1), "unread_thread_notifications": {root: n(2)},
    }
    assert await counts(api, bob, room_id, threaded=False) == {"unread_notifications": n(3)}

    # A receipt in the thread reads the thread only; the receipt carries its thread_id.
    await receipt(api, bob, room_id, latest, root)
    assert await counts(api, bob, room_id, threaded=True) == {
        "unread_notifications": n(1), "unread_thread_notifications": {},
    }
    assert await counts(api, bob, room_id, threaded=False) == {"unread_notifications": n(1)}
    ephemeral = (await api.sync(alice))["rooms"]["join"][room_id]["ephemeral"]["events"]
    read = next(e for e in ephemeral if e["type"] == "m.receipt")["content"][latest]["m.read"]
    assert read[bob.user_id]["thread_id"] == root

    # `main` reads the main timeline only.
    await reply(api, alice, room_id, root, "three")
    await receipt(api, bob, room_id, root, "main")
    assert await counts(api, bob, room_id, threaded=True) == {
        "unread_notifications": n(0), "unread_thread_notifications": {root: n(1)},
    }

    # An unthreaded receipt reads everything before it.
    last = await api.send_message(alice, room_id, "last")
    await receipt(api, bob, room_id, last, None)
    assert await counts(api, bob, room_id, threaded=True) == {
        "unread_notifications": n(0), "unread_thread_notifications": {},
    }


async def test_an_event_relating_to_a_thread_reply_counts_in_that_thread(
    api: MatrixApi,
) -> None:
    """A reference (or edit, reaction) to a thread reply is in the reply's thread, as Synapse
    has it: its notification counts there, not in the main timeline."""
    alice, bob = await api.register("alice"), await api.register("bob")
    room_id = await api.create_room(alice)
    await api.invite(alice, room_id, bob)
    await api.join(bob, room_id)
    root = await api.send_message(alice, room_id, "root")
    latest = await reply(api, alice, room_id, root, "one")
    await api.ok("POST", f"rooms/{room_id}/send/m.room.message", json={
        "msgtype": "m.text", "body": "see above",
        "m.relates_to": {"rel_type": "m.reference", "event_id": latest},
    }, token=alice.token)

    assert await counts(api, bob, room_id, threaded=True) == {
        "unread_notifications": n(1), "unread_thread_notifications": {root: n(2)},
    }
