"""A room's forward extremities are capped: when events from other servers leave more than
ten heads, one of our members merges them with an `org.matrix.dummy_event` (as Synapse does)."""

from __future__ import annotations

from homeserver.services.rooms.extremities import DUMMY_EVENT, MAX_EXTREMITIES
from homeserver.services.rooms.remote import Outcome
from tests.conftest import RunningServer
from tests.federation_peers import eventually
from tests.helpers import MatrixApi
from tests.remote_rooms import BOB, joined, room_of


async def heads(homeserver: RunningServer, room_id: str) -> set[str]:
    db = homeserver.hs.db
    assert db is not None
    rows = await db.run(lambda c: c.fetch(
        "SELECT event_id FROM forward_extremities WHERE room_id = $1", room_id
    ))
    return {r["event_id"] for r in rows}


async def test_more_than_ten_heads_are_merged_by_a_dummy_event(
    homeserver: RunningServer, api: MatrixApi
) -> None:
    builder, me, incoming = await joined(homeserver, api)
    room_id = room_of(builder)
    fork_point = list(builder.latest)
    forked: set[str] = set()
    for i in range(MAX_EXTREMITIES + 2):  # each on the same event: one more head each
        event_id, pdu = builder.make(
            BOB, "m.room.message", {"msgtype": "m.text", "body": f"fork {i}"},
            prev_events=fork_point,
        )
        assert (await incoming.receive(room_id, pdu)).outcome is Outcome.ACCEPTED
        forked.add(event_id)
        if i < MAX_EXTREMITIES:
            # Up to the bound nothing is merged: the heads are the forks so far.
            assert await heads(homeserver, room_id) == forked

    async def merged() -> set[str] | None:
        now = await heads(homeserver, room_id)
        return now if len(now) == 1 and not now & forked else None

    (dummy_id,) = await eventually(merged, "the heads merged into one")
    db, rooms = homeserver.hs.db, homeserver.hs.incoming
    assert db is not None and rooms is not None
    dummy = (await db.run(lambda c: rooms.cache.get_pdus(c, [dummy_id])))[dummy_id]
    assert (dummy["type"], dummy["sender"], dummy["content"]) == (DUMMY_EVENT, me.user_id, {})
    assert set(dummy["prev_events"]) == forked

    # Clients never see it (as with Synapse): not in /sync, not in /messages, while the forks
    # it merged are there.
    sync = await api.sync(me, filter='{"room":{"timeline":{"limit":50}}}')
    synced = {e["event_id"] for e in sync["rooms"]["join"][room_id]["timeline"]["events"]}
    messages = await api.ok(
        "GET", f"rooms/{room_id}/messages", token=me.token, params={"dir": "b", "limit": "50"}
    )
    paged = {e["event_id"] for e in messages["chunk"]}
    assert forked <= synced and forked <= paged
    assert dummy_id not in synced | paged
