"""The room engine's state resolution reads from PostgreSQL what the algorithm of the room's
version needs: for room version 1, the conflicted events and the state their auth checks read
(no auth chains), and resolves as the pure function does with every event at hand."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from homeserver.protocol.event_refs import referenced_event_ids
from homeserver.protocol.room_versions import ROOM_V1
from homeserver.protocol.state_res_v1 import resolve_state_v1
from homeserver.services.rooms import state
from storage.database import Database
from storage.events import NewEvent
from tests.storage.rows import event, insert
from tests.unit.state_forks import (
    ALICE,
    BOB,
    CAROL,
    forks,
    room_with_moderator,
)


def row(event_id: str, pdu: dict[str, Any]) -> NewEvent:
    """An `events` row holding the builder's full PDU."""
    new = event(
        event_id, pdu["room_id"], stream=None, depth=pdu["depth"], type=pdu["type"],
        state_key=pdu.get("state_key"), sender=pdu["sender"], content=pdu["content"],
        prev=referenced_event_ids(pdu["prev_events"]),
        auth=referenced_event_ids(pdu["auth_events"]),
    )
    return dataclasses.replace(new, stored=dataclasses.replace(new.stored, json=json.dumps(pdu)))


async def test_a_v1_fork_resolves_from_the_database_as_with_every_event_at_hand(
    db: Database,
) -> None:
    b = room_with_moderator("1")
    a, c = forks(b)
    pl = b.power_levels()
    demote = a.send(ALICE, "m.room.power_levels", {**pl, "users": {**pl["users"], BOB: 0}}, "")
    c.send(BOB, "m.room.member", {"membership": "ban"}, CAROL)
    c.send(BOB, "m.room.topic", {"topic": "bob's"}, "")
    topic = a.send(ALICE, "m.room.topic", {"topic": "alice's"}, "")
    async with db.connection() as conn:
        await insert(conn, *(row(i, pdu) for i, pdu in b.events.items()))
        resolved = await state.resolve(conn, ROOM_V1, [a.state, c.state])
    assert resolved == resolve_state_v1(ROOM_V1, [a.state, c.state], b.events)
    assert resolved[("m.room.power_levels", "")] == demote
    assert resolved[("m.room.member", CAROL)] == b.state_ids[("m.room.member", CAROL)]
    assert resolved[("m.room.topic", "")] == topic


async def test_v1_reads_the_state_its_checks_need_though_no_auth_chain_holds_it(
    db: Database,
) -> None:
    """Bob leaves on one branch and sets the topic on the other. His topic, deeper, fails
    (he left), so the older topic, Alice's, is checked: against her membership as the state
    sets hold it, a display name change that no conflicted event names in its auth chain."""
    b = room_with_moderator("1")
    old_topic = b.send(ALICE, "m.room.topic", {"topic": "old"}, "")
    b.send(ALICE, "m.room.member", {"membership": "join", "displayname": "Alice"}, ALICE)
    a, c = forks(b)
    leave = a.send(BOB, "m.room.member", {"membership": "leave"}, BOB)
    c.send(BOB, "m.room.topic", {"topic": "new"}, "")
    async with db.connection() as conn:
        await insert(conn, *(row(i, pdu) for i, pdu in b.events.items()))
        resolved = await state.resolve(conn, ROOM_V1, [a.state, c.state])
    assert resolved[("m.room.member", BOB)] == leave
    assert resolved[("m.room.topic", "")] == old_topic
