"""Send-to-device messaging: `PUT /sendToDevice` and delivery through /sync, exactly once."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.helpers import MatrixApi, User, validate_response

EVENT_TYPE = "org.example.ping"
LONG_POLL_MS = 20_000



async def send(
    api: MatrixApi, sender: User, txn_id: str, messages: dict[str, Any],
    event_type: str = EVENT_TYPE,
) -> tuple[int, Any]:
    return await api.request(
        "PUT", f"sendToDevice/{event_type}/{txn_id}", json={"messages": messages},
        token=sender.token,
    )


async def send_ok(api: MatrixApi, sender: User, txn_id: str, messages: dict[str, Any]) -> None:
    status, body = await send(api, sender, txn_id, messages)
    assert (status, body) == (200, {}), body


async def sync(api: MatrixApi, user: User, **params: Any) -> dict[str, Any]:
    body = await api.sync(user, **params)
    validate_response("sync.yaml", "/sync", "get", 200, body)
    return body


def received(body: dict[str, Any]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = body["to_device"]["events"]
    return events


async def test_delivered_to_one_device_and_to_every_device(api: MatrixApi) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    bob2 = await api.login(bob)
    tokens = {d.device_id: (await sync(api, d))["next_batch"] for d in (bob, bob2)}

    await send_ok(api, alice, "one", {bob.user_id: {bob.device_id: {"n": 1}}})
    await send_ok(api, alice, "all", {bob.user_id: {"*": {"n": 2}}})

    first = received(await sync(api, bob, since=tokens[bob.device_id]))
    second = received(await sync(api, bob2, since=tokens[bob2.device_id]))
    expected = {"sender": alice.user_id, "type": EVENT_TYPE}
    assert first == [{**expected, "content": {"n": 1}}, {**expected, "content": {"n": 2}}]
    assert second == [{**expected, "content": {"n": 2}}]


async def test_explicit_device_wins_over_wildcard_and_unknown_devices_are_skipped(
    api: MatrixApi,
) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    bob2 = await api.login(bob)
    await send_ok(api, alice, "t", {
        bob.user_id: {"*": {"to": "all"}, bob2.device_id: {"to": "bob2"}, "NOSUCH": {"x": 1}},
        "@carol:localhost": {"*": {"to": "nobody"}},  # no such user
        "@dave:elsewhere.example": {"D": {"to": "remote"}},  # remote users: not federated yet
    })
    assert [e["content"] for e in received(await sync(api, bob))] == [{"to": "all"}]
    assert [e["content"] for e in received(await sync(api, bob2))] == [{"to": "bob2"}]


async def test_transaction_ids_are_idempotent_per_sender_device(api: MatrixApi) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    alice2 = await api.login(alice)
    since = (await sync(api, bob))["next_batch"]
    message = {bob.user_id: {bob.device_id: {"hello": True}}}

    await send_ok(api, alice, "txn1", message)
    await send_ok(api, alice, "txn1", message)  # a retry: nothing new
    await send_ok(api, alice2, "txn1", message)  # same ID from another device: a new message

    assert len(received(await sync(api, bob, since=since))) == 2


async def test_exactly_once_acknowledged_by_the_next_since(api: MatrixApi) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    t0 = (await sync(api, bob))["next_batch"]
    await send_ok(api, alice, "x", {bob.user_id: {bob.device_id: {"secret": "s"}}})

    first = await sync(api, bob, since=t0)
    assert [e["content"] for e in received(first)] == [{"secret": "s"}]
    again = await sync(api, bob, since=t0)  # the response was lost: the same messages again
    assert received(again) == received(first)
    t1 = again["next_batch"]
    assert received(await sync(api, bob, since=t1)) == []
    # Acknowledged means deleted: even the old token no longer brings it back.
    assert received(await sync(api, bob, since=t0)) == []


async def test_long_poll_wakes_on_a_to_device_message(api: MatrixApi) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    since = (await sync(api, bob))["next_batch"]
    poll = asyncio.create_task(sync(api, bob, since=since, timeout=LONG_POLL_MS))
    await send_ok(api, alice, "wake", {bob.user_id: {"*": {"wake": 1}}})
    # Half the poll's timeout: an answer before it is the wake-up.
    body = await asyncio.wait_for(poll, LONG_POLL_MS / 2000)
    assert [e["content"] for e in received(body)] == [{"wake": 1}]


async def test_messages_for_a_logged_out_device_are_dropped(api: MatrixApi) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    bob2 = await api.login(bob, device_id="PHONE")
    await send_ok(api, alice, "a", {bob.user_id: {"PHONE": {"n": 1}}})
    await api.ok("POST", "logout", json={}, token=bob2.token)
    await send_ok(api, alice, "b", {bob.user_id: {"PHONE": {"n": 2}}})  # skipped: no device

    # A new device that happens to reuse the ID must not inherit the old device's inbox.
    again = await api.login(bob, device_id="PHONE")
    assert received(await sync(api, again)) == []


async def test_concurrent_sends_are_each_delivered_exactly_once(api: MatrixApi) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    since = (await sync(api, bob))["next_batch"]
    statuses = await asyncio.gather(*(
        send(api, alice, f"c{i}", {bob.user_id: {bob.device_id: {"i": i}}}) for i in range(50)
    ))
    assert all(status == 200 for status, _ in statuses)

    seen: list[int] = []
    for _ in range(5):
        body = await sync(api, bob, since=since)
        # Repeating the same sync before acknowledging gives exactly the same batch.
        assert received(await sync(api, bob, since=since)) == received(body)
        seen += [e["content"]["i"] for e in received(body)]
        since = body["next_batch"]
    assert sorted(seen) == list(range(50))


async def test_a_long_queue_is_paged_over_several_syncs(api: MatrixApi) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    since = (await sync(api, bob))["next_batch"]
    total = 230
    for i in range(total):
        await send_ok(api, alice, f"p{i}", {bob.user_id: {bob.device_id: {"i": i}}})

    pages: list[list[int]] = []
    while True:
        body = await sync(api, bob, since=since)
        page = [e["content"]["i"] for e in received(body)]
        if not page:
            break
        pages.append(page)
        since = body["next_batch"]
    assert [len(p) for p in pages] == [100, 100, 30]
    assert [i for p in pages for i in p] == list(range(total))  # oldest first, none lost


async def test_bad_requests_are_refused_with_matrix_errors(api: MatrixApi) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    path = f"sendToDevice/{EVENT_TYPE}/bad"
    cases: list[tuple[Any, int, str]] = [
        ({}, 400, "M_MISSING_PARAM"),
        ({"messages": []}, 400, "M_BAD_JSON"),
        ({"messages": {"not-a-user": {"D": {}}}}, 400, "M_INVALID_PARAM"),
        ({"messages": {bob.user_id: ["D"]}}, 400, "M_BAD_JSON"),
        ({"messages": {bob.user_id: {"D": "text"}}}, 400, "M_BAD_JSON"),
        ({"messages": {bob.user_id: {"": {}}}}, 400, "M_INVALID_PARAM"),
        ({"messages": {bob.user_id: {"*": {"pad": "x" * 65536}}}}, 413, "M_TOO_LARGE"),
        ({"messages": {bob.user_id: {"*": {"nul": "\u0000"}}}}, 400, "M_INVALID_PARAM"),
    ]
    for i, (body, status, errcode) in enumerate(cases):
        got = await api.request("PUT", f"{path}{i}", json=body, token=alice.token)
        assert got[0] == status and got[1]["errcode"] == errcode, (body, got)
    got = await api.request("PUT", path, raw=b"{not json", token=alice.token)
    assert got[0] == 400 and got[1]["errcode"] == "M_NOT_JSON"
    got = await api.request("PUT", path, json={"messages": {}})
    assert got[0] == 401 and got[1]["errcode"] == "M_MISSING_TOKEN"
    # Nothing of the refused requests was queued.
    assert received(await sync(api, bob)) == []
