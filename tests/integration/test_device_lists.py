"""Device-list tracking over HTTP: /sync `device_lists.changed` / `left`, the long-poll wake-up
on a device-list change, and /keys/changes between two sync tokens.
"""

from __future__ import annotations

import asyncio
from typing import Any

from homeserver import metrics
from tests.helpers import MatrixApi, User, validate_response
from tests.olm_device import CrossSigningKey, OlmDevice

LONG_POLL_MS = 30_000
WAKE_DEADLINE_S = 10.0


async def shared_room(api: MatrixApi, owner: User, *members: User) -> str:
    room_id = await api.create_room(owner, preset="public_chat")
    for member in members:
        await api.join(member, room_id)
    return room_id


async def key_changes(api: MatrixApi, user: User, since: str, upto: str) -> dict[str, Any]:
    body: dict[str, Any] = await api.ok(
        "GET", "keys/changes", token=user.token, params={"from": since, "to": upto}
    )
    validate_response("keys.yaml", "/keys/changes", "get", 200, body)
    return body


async def waiting_syncs() -> None:
    """Yield until one more /sync than now is registered with the notifier.

    The server runs in this event loop, so yielding is what lets it get there; the gauge is
    the one observable sign that the request now listens for wake-ups.
    """
    start = metrics.SYNC_LONG_POLLS._value.get()
    while metrics.SYNC_LONG_POLLS._value.get() <= start:  # noqa: ASYNC110
        await asyncio.sleep(0)


async def test_key_upload_shows_in_changed_and_wakes_long_poll(api: MatrixApi) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    await shared_room(api, alice, bob)
    since = (await api.sync(alice))["next_batch"]

    registered = asyncio.create_task(waiting_syncs())
    poll = asyncio.create_task(api.sync(alice, since=since, timeout=LONG_POLL_MS))
    await registered
    bob_device = OlmDevice(api, bob)
    await bob_device.upload_ok(device_keys=bob_device.device_keys())
    body = await asyncio.wait_for(poll, WAKE_DEADLINE_S)
    assert body["device_lists"] == {"changed": [bob.user_id], "left": []}

    quiet = await api.sync(alice, since=body["next_batch"])
    assert quiet["device_lists"] == {"changed": [], "left": []}


async def test_cross_signing_and_logout_are_changes(api: MatrixApi) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    await shared_room(api, alice, bob)
    since = (await api.sync(alice))["next_batch"]
    master = CrossSigningKey(bob.user_id, "master")
    await api.ok("POST", "keys/device_signing/upload", json={"master_key": master.key()},
                 token=bob.token)
    body = await api.sync(alice, since=since)
    assert body["device_lists"]["changed"] == [bob.user_id]

    await api.ok("POST", "logout", json={}, token=bob.token)
    body = await api.sync(alice, since=body["next_batch"])
    assert body["device_lists"]["changed"] == [bob.user_id]


async def test_leaving_the_only_shared_room_is_left(api: MatrixApi) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    room_id = await shared_room(api, alice, bob)
    await api.create_room(bob)  # Bob stays in a room of his own, shared with no one
    since = (await api.sync(alice))["next_batch"]
    await api.ok("POST", f"rooms/{room_id}/leave", json={}, token=bob.token)
    body = await api.sync(alice, since=since)
    assert body["device_lists"] == {"changed": [], "left": [bob.user_id]}
    # Joining again shares a room again: each sees the other in `changed`.
    bob_since = (await api.sync(bob))["next_batch"]
    await api.join(bob, room_id)
    joined = await api.sync(alice, since=body["next_batch"])
    assert joined["device_lists"]["changed"] == [bob.user_id]
    bob_view = await api.sync(bob, since=bob_since)
    assert alice.user_id in bob_view["device_lists"]["changed"]


async def test_user_joining_a_shared_room_is_changed(api: MatrixApi) -> None:
    alice, carol = await api.register("alice"), await api.register("carol")
    room_id = await api.create_room(alice, preset="public_chat")
    since = (await api.sync(alice))["next_batch"]
    await api.join(carol, room_id)
    body = await api.sync(alice, since=since)
    assert body["device_lists"]["changed"] == [carol.user_id]


async def test_keys_changes_between_tokens(api: MatrixApi) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    await shared_room(api, alice, bob)
    first = (await api.sync(alice))["next_batch"]
    bob_device = OlmDevice(api, bob)
    await bob_device.upload_ok(device_keys=bob_device.device_keys())
    second = (await api.sync(alice, since=first))["next_batch"]
    assert await key_changes(api, alice, first, second) == {"changed": [bob.user_id], "left": []}
    assert await key_changes(api, alice, second, second) == {"changed": [], "left": []}

    for params, errcode in (
        ({"from": first}, "M_MISSING_PARAM"),
        ({"to": first}, "M_MISSING_PARAM"),
        ({"from": "garbage", "to": second}, "M_INVALID_PARAM"),
        ({"from": first, "to": "s-1"}, "M_INVALID_PARAM"),
    ):
        status, body = await api.request("GET", "keys/changes", token=alice.token, params=params)
        assert (status, body["errcode"]) == (400, errcode), (params, body)


async def test_user_sharing_no_room_never_sees_the_change(api: MatrixApi) -> None:
    alice, bob, carol = [await api.register(n) for n in ("alice", "bob", "carol")]
    await shared_room(api, alice, bob)
    await api.create_room(carol)
    since = (await api.sync(carol))["next_batch"]
    bob_device = OlmDevice(api, bob)
    await bob_device.upload_ok(device_keys=bob_device.device_keys())
    body = await api.sync(carol, since=since)
    assert body["device_lists"] == {"changed": [], "left": []}
    assert await key_changes(api, carol, since, body["next_batch"]) == {"changed": [], "left": []}
