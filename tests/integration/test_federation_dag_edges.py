"""Events whose place in the DAG is not what it seems: prev events their sender will not hand
over, prev events of another room fetched for a gap, and soft-failed events built on one
another (server-server-api.md "Soft failure", "Backfilling and retrieving missing events").

Where b must misbehave on the wire, b is stopped and a stand-in takes its port: it answers a's
`/get_missing_events`, `/state` and `/event` with what the test chose, while the PDUs it sent
before and those the test sends on its behalf carry b's real signatures.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web

from federation.request_auth import authorization_header
from storage import events as events_store
from tests.federation_helpers import StandIn, json_handler
from tests.federation_peers import Peers, join_and_wait
from tests.shared_rooms import V1, Room, forge, send_pdus, shared_room, stored


async def standing_in_for_b(
    room: Room, tmp_path: Path, gap: list[dict[str, Any]], events: dict[str, dict[str, Any]]
) -> StandIn:
    """b stopped and a stand-in on its port: `/get_missing_events` answers `gap`, `/event`
    the PDU of `events` asked for, and `/state` the room's current state as a holds it."""
    hs = room.a.hs
    assert hs is not None and hs.db is not None
    state_ids = list((await room.current_state()).values())
    held = await hs.db.run(lambda c: events_store.get_events(c, state_ids))
    state = [json.loads(held[i].json) for i in state_ids]

    async def event(request: web.Request) -> web.StreamResponse:
        pdu = events.get(request.path.rsplit("/", 1)[1])
        if pdu is None:
            return web.json_response({"errcode": "M_NOT_FOUND"}, status=404)
        return web.json_response(
            {"origin": room.b.name, "origin_server_ts": int(time.time() * 1000), "pdus": [pdu]}
        )

    await room.b.stop()
    stand_in = StandIn(tmp_path / "stand-in", port=room.b.port)
    stand_in.prefix_handlers.update({
        f"{V1}/get_missing_events/": json_handler({"events": gap}),
        f"{V1}/state/": json_handler({"pdus": state, "auth_chain": []}),
        f"{V1}/event/": event,
    })
    return await stand_in.start()


async def send_as_b(
    room: Room, http: aiohttp.ClientSession, *pdus: dict[str, Any]
) -> dict[str, Any]:
    """A transaction from b to a, signed with b's key (b itself is down)."""
    path = f"{V1}/send/{uuid.uuid4().hex}"
    body = {"origin": room.b.name, "origin_server_ts": int(time.time() * 1000),
            "pdus": list(pdus), "edus": []}
    auth = authorization_header("PUT", path, room.b.name, room.a.name, body, room.b.signing_key)
    async with http.put(
        room.a.federation_url + path, json=body, headers={"Authorization": auth}
    ) as response:
        answer = await response.json()
        assert response.status == 200, answer
    result: dict[str, Any] = answer["pdus"]
    return result


def asked(stand_in: StandIn, prefix: str) -> int:
    return sum(1 for r in stand_in.requests if r.path.startswith(V1 + prefix))


async def test_a_pushed_event_whose_prev_events_are_withheld_is_refused(
    peers: Peers, peer_http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """b pushes an event on a prev event that it will not hand over through
    /get_missing_events: a takes no state on b's word for it (Synapse refuses such an event
    too) and keeps nothing."""
    room = await shared_room(peers, peer_http)
    withheld_id, withheld = await forge(
        room, room.room_id, room.bob.user_id, "m.room.message",
        {"msgtype": "m.text", "body": "withheld"},
    )
    event_id, pdu = await forge(
        room, room.room_id, room.bob.user_id, "m.room.message",
        {"msgtype": "m.text", "body": "on top"}, prev_events=[withheld_id],
        depth=withheld["depth"] + 1,
    )
    stand_in = await standing_in_for_b(room, tmp_path, [], {withheld_id: withheld})
    try:
        answer = await send_as_b(room, peer_http, pdu)
    finally:
        await stand_in.stop()
    assert "could not fetch" in answer[event_id].get("error", ""), answer
    assert asked(stand_in, "/get_missing_events/") == 1
    assert asked(stand_in, "/state/") == 0
    assert not await stored(room, event_id) and not await stored(room, withheld_id)


async def test_a_gap_event_whose_prev_event_is_of_another_room_is_refused(
    peers: Peers, peer_http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """The oldest event of a gap names, as its prev event, an event of a room a is not in: the
    state after that event, fetched from b, is no state of this room to judge by, so neither
    that event nor the one pushed on it enters the room."""
    room = await shared_room(peers, peer_http)
    api_b = room.api_b
    elsewhere_room = await api_b.create_room(room.bob, preset="private_chat")
    elsewhere_id = await api_b.send_message(room.bob, elsewhere_room, "of another room")
    hs_b = room.b.hs
    assert hs_b is not None and hs_b.db is not None
    held = await hs_b.db.run(lambda c: events_store.get_events(c, [elsewhere_id]))
    elsewhere = json.loads(held[elsewhere_id].json)

    gap_id, gap = await forge(
        room, room.room_id, room.bob.user_id, "m.room.message",
        {"msgtype": "m.text", "body": "grafted"}, prev_events=[elsewhere_id],
    )
    event_id, pdu = await forge(
        room, room.room_id, room.bob.user_id, "m.room.message",
        {"msgtype": "m.text", "body": "on top"}, prev_events=[gap_id], depth=gap["depth"] + 1,
    )
    stand_in = await standing_in_for_b(room, tmp_path, [gap], {elsewhere_id: elsewhere})
    try:
        answer = await send_as_b(room, peer_http, pdu)
    finally:
        await stand_in.stop()
    assert "error" in answer[event_id], answer
    assert asked(stand_in, "/event/") == 1  # the gap's prev event was asked for, and refused
    for refused in (event_id, gap_id, elsewhere_id):
        assert not await stored(room, refused), refused


async def test_soft_failed_events_are_no_heads_and_one_may_build_on_another(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    """Soft failure: soft-failed events are not added to the forward extremities (so a's next
    event does not refer to them), the heads they were built on stay heads, and a second
    soft-failed event naming the first as its prev event is soft-failed too, not refused for
    a missing prev event (Sytest's "Inbound federation accepts a second soft-failed event").
    Other servers get them from /get_missing_events only when asking from an event that refers
    to them."""
    room = await shared_room(peers, peer_http)
    hs = room.a.hs
    assert hs is not None and hs.db is not None
    # b keeps a user in the room after Bob's ban, so that b may still read it.
    carol = await room.api_b.register("carol")
    await join_and_wait(room.api_b, carol, room.room_id, room.a, room.api, room.alice)
    before = await room.current_state()
    auth = [before[("m.room.power_levels", "")], before[("m.room.member", room.bob.user_id)]]
    if room.version.create_event_in_auth_events:
        auth.append(before[("m.room.create", "")])
    heads_before = await hs.db.run(lambda c: events_store.get_forward_extremities(c, room.room_id))
    ban = await room.api.ok(
        "POST", f"rooms/{quote(room.room_id)}/ban", token=room.alice.token,
        json={"user_id": room.bob.user_id},
    )
    assert ban == {}
    ban_id = (await room.current_state())[("m.room.member", room.bob.user_id)]

    async def heads() -> set[str]:
        found = await hs.db.run(lambda c: events_store.get_forward_extremities(c, room.room_id))
        return {e.event_id for e in found}

    async def soft_failed(event_id: str) -> bool:
        row = await hs.db.run(lambda c: c.fetchrow(
            "SELECT soft_failed, rejection_reason FROM events WHERE event_id = $1", event_id
        ))
        return row is not None and row["soft_failed"] and row["rejection_reason"] is None

    first_id, first = await forge(
        room, room.room_id, room.bob.user_id, "m.room.message",
        {"msgtype": "m.text", "body": "evading"}, auth_events=auth,
        prev_events=[h.event_id for h in heads_before],
    )
    second_id, second = await forge(
        room, room.room_id, room.bob.user_id, "m.room.message",
        {"msgtype": "m.text", "body": "evading again"}, auth_events=auth,
        prev_events=[first_id], depth=first["depth"] + 1,
    )
    assert await send_pdus(room, first) == {first_id: {}}
    assert await soft_failed(first_id)
    assert await heads() == {ban_id}
    assert await send_pdus(room, second) == {second_id: {}}
    assert await soft_failed(second_id)
    assert await heads() == {ban_id}

    sent = await room.api.send_message(room.alice, room.room_id, "after")
    pdu = (await hs.db.run(lambda c: events_store.get_events(c, [sent])))[sent]
    assert json.loads(pdu.json)["prev_events"] == [ban_id]

    # Served to other servers only when asked from an event that refers to them.
    missing = await room.ok("POST", f"/get_missing_events/{room.room}", body={
        "earliest_events": [h.event_id for h in heads_before], "latest_events": [second_id],
    })
    assert [room.event_id(e) for e in missing["events"]] == [first_id]
    backfilled = await room.ok(
        "GET", f"/backfill/{room.room}", query={"v": sent, "limit": "20"}
    )
    assert not {first_id, second_id} & {room.event_id(p) for p in backfilled["pdus"]}
