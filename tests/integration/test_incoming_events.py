"""The room cluster's path for remote events, fed directly with signed events built by a
`RoomBuilder` (as federation hands them over once signatures are checked): joining a room that
lives elsewhere, accepted, rejected and soft-failed events, forks resolved by state resolution
and merged by the next local event."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import REGISTRY

from homeserver.protocol import state_res
from homeserver.services.rooms.checks import MissingEvents
from homeserver.services.rooms.remote import Outcome
from tests.conftest import RunningServer
from tests.helpers import MatrixApi
from tests.remote_rooms import ALICE, BOB, CAROL, joined, room_of


async def _current_state(homeserver: RunningServer, room_id: str) -> dict[Any, str]:
    from storage import state as state_store

    db = homeserver.hs.db
    assert db is not None
    return await db.run(lambda c: state_store.get_current_state(c, room_id))


async def test_a_joined_remote_room_shows_its_state_and_new_messages(
    homeserver: RunningServer, api: MatrixApi
) -> None:
    builder, me, incoming = await joined(homeserver, api)
    room_id = room_of(builder)
    assert await _current_state(homeserver, room_id) == builder.state_ids
    message = builder.make(BOB, "m.room.message", {"msgtype": "m.text", "body": "hi"})
    assert (await incoming.receive(room_id, message[1])).outcome is Outcome.ACCEPTED
    builder.apply(*message)

    response = await api.sync(me)
    room = response["rooms"]["join"][room_id]
    bodies = [e["content"].get("body") for e in room["timeline"]["events"]]
    assert "hi" in bodies
    members = await api.ok("GET", f"rooms/{room_id}/joined_members", token=me.token)
    assert set(members["joined"]) == {ALICE, BOB, me.user_id}
    # The same event again is no change.
    assert (await incoming.receive(room_id, message[1])).outcome is Outcome.KNOWN


async def test_an_event_failing_its_auth_is_rejected_and_never_seen(
    homeserver: RunningServer, api: MatrixApi
) -> None:
    builder, me, incoming = await joined(homeserver, api)
    room_id = room_of(builder)
    # Carol never joined: her message passes no auth check.
    event_id, pdu = builder.make(CAROL, "m.room.message", {"msgtype": "m.text", "body": "x"})
    outcome = await incoming.receive(room_id, pdu)
    assert outcome.outcome is Outcome.REJECTED
    messages = await api.ok("GET", f"rooms/{room_id}/messages?dir=b&limit=50", token=me.token)
    assert event_id not in [e["event_id"] for e in messages["chunk"]]


async def test_an_event_the_current_state_forbids_is_soft_failed(
    homeserver: RunningServer, api: MatrixApi
) -> None:
    builder, me, incoming = await joined(homeserver, api)
    room_id = room_of(builder)
    before = list(builder.latest)
    ban_id, ban = builder.make(ALICE, "m.room.member", {"membership": "ban"}, BOB)
    assert (await incoming.receive(room_id, ban)).outcome is Outcome.ACCEPTED
    # Bob's message, built on the state before his ban, reaches us after it.
    late_id, late = builder.make(
        BOB, "m.room.message", {"msgtype": "m.text", "body": "late"}, prev_events=before
    )
    before_count = _soft_failed("auth")
    outcome = await incoming.receive(room_id, late)
    assert outcome.outcome is Outcome.SOFT_FAILED
    assert outcome.reason is not None and outcome.reason.startswith("auth: not allowed by")
    # The label dashboards count soft failures by.
    assert _soft_failed("auth") == before_count + 1
    messages = await api.ok("GET", f"rooms/{room_id}/messages?dir=b&limit=50", token=me.token)
    assert late_id not in [e["event_id"] for e in messages["chunk"]]
    assert (await _current_state(homeserver, room_id))[("m.room.member", BOB)] == ban_id


def _soft_failed(reason: str) -> float:
    return REGISTRY.get_sample_value("moot_events_soft_failed_total", {"reason": reason}) or 0.0


async def test_missing_prev_events_are_asked_for(
    homeserver: RunningServer, api: MatrixApi
) -> None:
    builder, _, incoming = await joined(homeserver, api)
    gap_id, gap = builder.make(BOB, "m.room.message", {"msgtype": "m.text", "body": "1"})
    builder.apply(gap_id, gap)
    _, after = builder.make(BOB, "m.room.message", {"msgtype": "m.text", "body": "2"})
    with pytest.raises(MissingEvents) as missing:
        await incoming.receive(room_of(builder), after)
    assert missing.value.event_ids == [gap_id]


@pytest.mark.parametrize("version", ["11", "12"])  # v12: the create event is in no auth_events
async def test_a_fork_resolves_like_state_resolution_and_a_local_send_merges_it(
    homeserver: RunningServer, api: MatrixApi, version: str
) -> None:
    builder, me, incoming = await joined(homeserver, api, version)
    room_id = room_of(builder)
    fork_point = list(builder.latest)
    base_state = dict(builder.state_ids)
    # On one server Alice makes Bob a moderator; on another Bob, still a user, is banned...
    pl = builder.power_levels()
    pl["users"] = {**pl.get("users", {}), BOB: 50}
    promote_id, promote = builder.make(ALICE, "m.room.power_levels", pl, "")
    ban_id, ban = builder.make(ALICE, "m.room.member", {"membership": "ban"}, BOB,
                               prev_events=fork_point, state=base_state)
    for pdu in (promote, ban):
        assert (await incoming.receive(room_id, pdu)).outcome is Outcome.ACCEPTED

    events = dict(builder.events)
    events[promote_id], events[ban_id] = promote, ban
    side_a = {**base_state, ("m.room.power_levels", ""): promote_id}
    side_b = {**base_state, ("m.room.member", BOB): ban_id}
    expected = state_res.resolve_state(builder.rv, [side_a, side_b], events, set())
    assert await _current_state(homeserver, room_id) == expected

    # Our next event names both heads and closes the fork.
    sent = await api.send_message(me, room_id, "merged")
    db = homeserver.hs.db
    assert db is not None
    heads = await db.run(lambda c: c.fetch(
        "SELECT event_id FROM forward_extremities WHERE room_id = $1", room_id
    ))
    assert [h["event_id"] for h in heads] == [sent]
    rooms = homeserver.hs.incoming.cache if homeserver.hs.incoming else None
    assert rooms is not None
    pdu = (await db.run(lambda c: rooms.get_pdus(c, [sent])))[sent]
    assert set(pdu["prev_events"]) == {promote_id, ban_id}
