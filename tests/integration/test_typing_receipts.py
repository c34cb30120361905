"""Typing notifications, receipts and read markers, and how /sync shows them."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.helpers import MatrixApi, User, validate_response


def ephemeral(body: dict[str, Any], room_id: str) -> dict[str, dict[str, Any]]:
    events = body["rooms"]["join"][room_id]["ephemeral"]["events"]
    return {e["type"]: e["content"] for e in events}


async def shared_room(api: MatrixApi) -> tuple[User, User, str]:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room_id = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room_id)
    return alice, bob, room_id


async def test_typing_start_and_stop_in_sync(api: MatrixApi) -> None:
    alice, bob, room_id = await shared_room(api)
    since = (await api.sync(bob))["next_batch"]
    path = f"rooms/{room_id}/typing/{alice.user_id}"
    poll = asyncio.create_task(api.sync(bob, since=since, timeout=20000))
    await api.ok("PUT", path, json={"typing": True, "timeout": 30000}, token=alice.token)
    body = await asyncio.wait_for(poll, 10)
    validate_response("sync.yaml", "/sync", "get", 200, body)
    assert ephemeral(body, room_id)["m.typing"] == {"user_ids": [alice.user_id]}
    assert ephemeral(await api.sync(bob), room_id)["m.typing"] == {"user_ids": [alice.user_id]}
    poll = asyncio.create_task(api.sync(bob, since=body["next_batch"], timeout=20000))
    await api.ok("PUT", path, json={"typing": False}, token=alice.token)
    body = await asyncio.wait_for(poll, 10)
    assert ephemeral(body, room_id)["m.typing"] == {"user_ids": []}


async def test_typing_expires_on_its_own(api: MatrixApi) -> None:
    alice, bob, room_id = await shared_room(api)
    path = f"rooms/{room_id}/typing/{alice.user_id}"
    await api.ok("PUT", path, json={"typing": True, "timeout": 1500}, token=alice.token)
    initial = await api.sync(bob)
    # Still typing at `since`, so the long-poll below can only end by the expiry.
    assert ephemeral(initial, room_id)["m.typing"] == {"user_ids": [alice.user_id]}
    body = await api.sync(bob, since=initial["next_batch"], timeout=20000)
    assert ephemeral(body, room_id)["m.typing"] == {"user_ids": []}


async def test_typing_errors(api: MatrixApi) -> None:
    alice, bob, room_id = await shared_room(api)
    outsider = await api.register("carol")

    async def check(user: User, target: str, body: Any, expected: tuple[int, str]) -> None:
        status, resp = await api.request(
            "PUT", f"rooms/{room_id}/typing/{target}", json=body, token=user.token
        )
        assert (status, resp["errcode"]) == expected, body

    await check(alice, bob.user_id, {"typing": True}, (403, "M_FORBIDDEN"))
    await check(outsider, outsider.user_id, {"typing": True}, (403, "M_FORBIDDEN"))
    await check(alice, alice.user_id, {}, (400, "M_MISSING_PARAM"))
    await check(alice, alice.user_id, {"typing": "yes"}, (400, "M_BAD_JSON"))
    await check(alice, alice.user_id, {"typing": True, "timeout": "1s"}, (400, "M_BAD_JSON"))
    status, resp = await api.request(
        "PUT", f"rooms/!nowhere:localhost/typing/{alice.user_id}", json={"typing": True},
        token=alice.token,
    )
    assert (status, resp["errcode"]) == (403, "M_FORBIDDEN")


async def test_receipts_in_sync(api: MatrixApi) -> None:
    alice, bob, room_id = await shared_room(api)
    event_id = await api.send_message(alice, room_id, "read me")
    since = (await api.sync(alice))["next_batch"]
    poll = asyncio.create_task(api.sync(alice, since=since, timeout=20000))
    await api.ok("POST", f"rooms/{room_id}/receipt/m.read/{event_id}", json={},
                 token=bob.token)
    body = await asyncio.wait_for(poll, 10)
    validate_response("sync.yaml", "/sync", "get", 200, body)
    receipt = ephemeral(body, room_id)["m.receipt"]
    assert set(receipt) == {event_id}
    assert set(receipt[event_id]["m.read"]) == {bob.user_id}
    assert isinstance(receipt[event_id]["m.read"][bob.user_id]["ts"], int)
    initial = ephemeral(await api.sync(alice), room_id)["m.receipt"]
    assert bob.user_id in initial[event_id]["m.read"]


async def test_threaded_and_private_receipts(api: MatrixApi) -> None:
    alice, bob, room_id = await shared_room(api)
    event_id = await api.send_message(alice, room_id, "hi")
    await api.ok("POST", f"rooms/{room_id}/receipt/m.read/{event_id}",
                 json={"thread_id": "main"}, token=bob.token)
    await api.ok("POST", f"rooms/{room_id}/receipt/m.read.private/{event_id}", json={},
                 token=bob.token)
    seen_by_alice = ephemeral(await api.sync(alice), room_id)["m.receipt"][event_id]
    assert "m.read.private" not in seen_by_alice
    assert seen_by_alice["m.read"][bob.user_id]["thread_id"] == "main"
    seen_by_bob = ephemeral(await api.sync(bob), room_id)["m.receipt"][event_id]
    assert bob.user_id in seen_by_bob["m.read.private"]


async def test_receipt_errors(api: MatrixApi) -> None:
    alice, bob, room_id = await shared_room(api)
    event_id = await api.send_message(alice, room_id, "hi")
    outsider = await api.register("carol")

    async def check(user: User, path: str, body: Any, expected: tuple[int, str]) -> None:
        status, resp = await api.request("POST", f"rooms/{room_id}/{path}", json=body,
                                         token=user.token)
        assert (status, resp["errcode"]) == expected, path

    await check(bob, f"receipt/m.unknown/{event_id}", {}, (400, "M_INVALID_PARAM"))
    await check(bob, f"receipt/m.read/{event_id}", {"thread_id": ""}, (400, "M_INVALID_PARAM"))
    await check(bob, f"receipt/m.read/{event_id}", {"thread_id": 3}, (400, "M_BAD_JSON"))
    await check(bob, f"receipt/m.fully_read/{event_id}", {"thread_id": "main"},
                (400, "M_INVALID_PARAM"))
    missing = event_id[:-4] + ("AAAA" if not event_id.endswith("AAAA") else "BBBB")
    await check(bob, f"receipt/m.read/{missing}", {}, (404, "M_NOT_FOUND"))
    await check(bob, "receipt/m.read/nope", {}, (400, "M_INVALID_PARAM"))
    await check(outsider, f"receipt/m.read/{event_id}", {}, (403, "M_FORBIDDEN"))
    await check(bob, "read_markers", {"m.fully_read": 5}, (400, "M_BAD_JSON"))
    await check(outsider, "read_markers", {"m.fully_read": event_id}, (403, "M_FORBIDDEN"))


async def test_read_markers(api: MatrixApi) -> None:
    alice, bob, room_id = await shared_room(api)
    event_id = await api.send_message(alice, room_id, "hi")
    since = (await api.sync(bob))["next_batch"]
    await api.ok("POST", f"rooms/{room_id}/read_markers",
                 json={"m.fully_read": event_id, "m.read": event_id}, token=bob.token)
    body = await api.sync(bob, since=since)
    room = body["rooms"]["join"][room_id]
    assert {"type": "m.fully_read", "content": {"event_id": event_id}} \
        in room["account_data"]["events"]
    assert bob.user_id in ephemeral(body, room_id)["m.receipt"][event_id]["m.read"]
    marker = await api.ok("GET", f"user/{bob.user_id}/rooms/{room_id}/account_data/m.fully_read",
                          token=bob.token)
    assert marker == {"event_id": event_id}


async def test_stopping_the_server_cancels_typing_timers(make_homeserver: Any, http: Any) -> None:
    """A typing timer left running after stop would end the typing on a closed pool (it did,
    and logged an error, when a test server stopped while someone was typing)."""
    server = await make_homeserver()
    api = MatrixApi(server.url, http)
    alice, _, room_id = await shared_room(api)
    path = f"rooms/{room_id}/typing/{alice.user_id}"
    await api.ok("PUT", path, json={"typing": True, "timeout": 30000}, token=alice.token)
    typing = server.hs.typing
    assert typing is not None
    await server.hs.stop()
    loop = asyncio.get_running_loop()
    pending = [
        h for h in loop._scheduled  # type: ignore[attr-defined]
        if not h.cancelled() and getattr(h._callback, "__self__", None) is typing
    ]
    assert pending == []
