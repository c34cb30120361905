"""Redacted events are stored redacted, so that no reader can serve what a redaction removed.

Theory of operation. The stored row of an event is what every reader starts from: the PDU
cache, federation's /event, /state and /backfill, and the SQL of the room directory. So once a
redaction takes effect, the row of the event it names is rewritten in its redacted form (the
spec's redaction algorithm; the event ID, hashes and signatures still verify). A redaction
meets its target in one of three orders:

- after it: the room cluster stages the censored row with the redaction (`RoomWrites._censor`);
- before it (a redaction from another server can outrun its target): the target is censored
  here as it arrives (`censor_arriving`);
- in a database written before rows were censored: `RoomCache.get_pdus` redacts what it reads,
  and `censor_current_state` rewrites at start-up the rows the directory reads with SQL.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

import asyncpg

from homeserver.protocol.appservice import without_events
from homeserver.protocol.redaction import redact_event, redacted_json
from homeserver.services.rooms.view import RoomView
from storage import appservice_queue as appservice_store
from storage import events as events_store


async def censor_arriving(
    conn: asyncpg.Connection, rooms: RoomView, room_id: str, pdus: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """`pdus` (by event ID, arriving from another server), those that a stored redaction
    already took effect on in their redacted form, to be stored as such."""
    redacted = await events_store.get_redacted_ids(conn, room_id, list(pdus))
    if not redacted:
        return pdus
    version = await rooms.room_version(conn, room_id)
    return {i: redact_event(pdu, version) if i in redacted else pdu for i, pdu in pdus.items()}


async def censor_current_state(conn: asyncpg.Connection, rooms: RoomView) -> int:
    """Rewrite the rows of redacted current state that still hold their original content;
    return how many there were."""
    censored = []
    for event_id, room_id, stored in await events_store.get_redacted_current_state(conn):
        version = await rooms.room_version(conn, room_id)
        pruned = redacted_json(json.loads(stored), version)
        if pruned != stored:
            censored.append((event_id, room_id, pruned))
    await events_store.censor_events(conn, censored)
    return len(censored)


async def forget_in_appservice_transactions(
    conn: asyncpg.Connection, event_ids: Collection[str]
) -> None:
    """Take `event_ids` (purged, expired or redacted in this transaction) out of the
    unacknowledged appservice transactions, whose bodies hold events as they were when the
    transaction was made: an appservice that is down must not get them when it returns."""
    if not event_ids:
        return
    ids = set(event_ids)
    for appservice_id, txn_id, body in await appservice_store.get_txn_bodies(conn):
        changed = without_events(body, ids)
        if changed is not None:
            await appservice_store.set_txn_body(conn, appservice_id, txn_id, *changed)
