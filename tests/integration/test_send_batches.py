"""Concurrent sends to one room are persisted together (one transaction per batch): each
request still gets its own answer, the DAG stays one chain, and the unread counts kept in
memory agree with the ones read from the database."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

from tests.conftest import RunningServer
from tests.helpers import MatrixApi, User

TEXT = {"msgtype": "m.text", "body": "hi"}


async def put(api: MatrixApi, user: User, room: str, txn: str, body: Any = TEXT) -> tuple[int, Any]:
    return await api.request(
        "PUT", f"rooms/{room}/send/m.room.message/{txn}", json=body, token=user.token
    )


async def timeline(api: MatrixApi, user: User, room: str) -> list[dict[str, Any]]:
    body = await api.ok(
        "GET", f"rooms/{room}/messages", token=user.token, params={"dir": "f", "limit": "100"}
    )
    return [e for e in body["chunk"] if e["type"] == "m.room.message"]


async def test_concurrent_sends_each_get_their_event_on_one_chain(
    api: MatrixApi, homeserver: RunningServer
) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room)
    outsider = await api.register("outsider")
    requests = [put(api, alice, room, f"a{i}", {"msgtype": "m.text", "body": f"a{i}"})
                for i in range(20)]
    requests += [put(api, bob, room, "same")] * 2  # a retry racing its original
    requests.append(put(api, outsider, room, "x"))  # refused by the auth rules alone
    results = await asyncio.gather(*requests)
    statuses = [status for status, _ in results]
    assert statuses[:22] == [200] * 22 and statuses[22] == 403, results
    assert results[22][1]["errcode"] == "M_FORBIDDEN"
    alice_ids = [body["event_id"] for _, body in results[:20]]
    assert len(set(alice_ids)) == 20
    assert results[20][1]["event_id"] == results[21][1]["event_id"]

    events = await timeline(api, alice, room)
    assert sorted(e["event_id"] for e in events) == sorted([*alice_ids, results[20][1]["event_id"]])
    # Alice's sends keep their arrival order, whatever batches they fell into.
    bodies = [e["content"]["body"] for e in events if e["sender"] == alice.user_id]
    assert bodies == [f"a{i}" for i in range(20)]
    # One chain: every event's prev_events is exactly the event before it (clients do not see
    # prev_events, so the stored PDUs are read).
    db = homeserver.hs.db
    assert db is not None
    async with db.connection() as conn:
        rows = await conn.fetch(
            "SELECT json FROM events WHERE room_id = $1 ORDER BY stream_ordering", room
        )
    pdus = [json.loads(r["json"]) for r in rows]
    for before, pdu in itertools.pairwise(pdus):
        assert len(pdu["prev_events"]) == 1
        assert pdu["depth"] == before["depth"] + 1
    async with db.connection() as conn:
        extremities = await conn.fetchval(
            "SELECT count(*) FROM forward_extremities WHERE room_id = $1", room
        )
    assert extremities == 1


async def test_unread_counts_follow_sends_and_receipts(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room)
    first = await api.sync(bob)
    since = first["next_batch"]

    async def counts(since: str | None = None) -> tuple[dict[str, int], str]:
        params = {"since": since} if since else {}
        body = await api.sync(bob, **params)
        section = body["rooms"]["join"].get(room)
        assert section is not None
        return section["unread_notifications"], body["next_batch"]

    ids = await asyncio.gather(*(api.send_message(alice, room, f"m{i}") for i in range(7)))
    now, since = await counts(since)
    assert now == {"notification_count": 7, "highlight_count": 0}
    await api.ok(
        "POST", f"rooms/{room}/receipt/m.read/{ids[2]}", json={}, token=bob.token
    )
    await api.send_message(alice, room, "after the receipt")
    now, since = await counts(since)
    assert now["notification_count"] == 5  # ids[3:] and the new one; ids[0..2] are read
    # An initial sync (the database's answer) agrees with the incremental one.
    fresh, _ = await counts()
    assert fresh == now
