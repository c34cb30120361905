"""Fetching a room's history from before our join (server-server-api.md "Backfilling and
retrieving missing events"): the federation side of `homeserver.services.room_history`'s
`RemoteHistory`, which /messages calls when a reader goes back past what this server holds.

The room's other servers are asked in turn (`/backfill` from the backward extremities) until
one gives us something. What comes back takes the path of every received PDU, oldest first:
signatures and content hash, auth against its auth events (the missing ones fetched) and
against the state before it; for the oldest events of the batch that state is fetched from the
server (`/state` at their prev events), since the events before them are not here. The events
are stored as *historical* (see `room_history`): with their state, out of the stream.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from federation.client import FederationClient, path_segment
from federation.inbound_pdus import InboundPdus, PduError
from federation.room_reads import MAX_BACKFILL_EVENTS
from federation.transport import FederationError
from homeserver.protocol.hashing import compute_event_id, create_event_id
from homeserver.protocol.identifiers import server_name_of
from homeserver.protocol.room_versions import RoomVersion
from homeserver.services.rooms.remote import Outcome
from storage.database import Database

log = logging.getLogger(__name__)

V1 = "/_matrix/federation/v1"


class Backfiller:
    def __init__(
        self, db: Database, pdus: InboundPdus, client: FederationClient, server_name: str
    ) -> None:
        self.db = db
        self.pdus = pdus
        self.engine = pdus.engine
        self.client = client
        self.server_name = server_name

    async def backfill(self, room_id: str, from_event_ids: Sequence[str], limit: int) -> int:
        room_version = await self.pdus.room_version(room_id)
        if room_version is None:
            return 0
        limit = min(limit, MAX_BACKFILL_EVENTS)
        for server in await self._servers(room_id):
            try:
                answer = await self.client.get_json(
                    server, f"{V1}/backfill/{path_segment(room_id)}",
                    {"v": list(from_event_ids), "limit": str(limit)},
                )
            except FederationError as e:
                log.info("backfilling %s from %s failed: %s", room_id, server, e)
                continue
            stored = 0
            # The deepest `limit` (those next to what we hold; a server may send more), oldest
            # first so that each finds its prev events stored.
            for pdu in _oldest_first(answer, room_id, room_version)[-limit:]:
                try:
                    received = await self.pdus.check_and_persist(
                        server, room_id, pdu, room_version, fetch_gap=False, historical=True
                    )
                except PduError as e:
                    log.info("a backfilled event of %s was not stored: %s", room_id, e)
                    continue
                stored += received.outcome is Outcome.ACCEPTED
            if stored:
                return stored
        return 0

    async def _servers(self, room_id: str) -> list[str]:
        """The other servers with users in the room."""
        members = await self.db.run(lambda c: self.engine.joined_members(c, room_id))
        return sorted({server_name_of(m) for m in members} - {self.server_name})


def _oldest_first(
    answer: Any, room_id: str, room_version: RoomVersion
) -> list[dict[str, Any]]:
    """The PDUs of a /backfill answer that are of the room, by depth."""
    pdus = answer.get("pdus") if isinstance(answer, dict) else None
    if not isinstance(pdus, list):
        return []
    events = [p for p in pdus if isinstance(p, dict) and _of_room(p, room_id, room_version)]
    return sorted(events, key=lambda p: d if isinstance(d := p.get("depth"), int) else 0)


def _of_room(pdu: dict[str, Any], room_id: str, room_version: RoomVersion) -> bool:
    """From room version 12 on the create event names no room: the room is named after it."""
    if "room_id" in pdu or not room_version.room_id_from_create_event:
        return pdu.get("room_id") == room_id
    try:
        return compute_event_id(pdu, room_version) == create_event_id(room_id)
    except Exception:  # anything unhashable is malformed
        return False
