"""Asks another server about one of its rooms: the federation side of
`homeserver.services.remote_room_info.RemoteRoomInfo` (`GET /hierarchy/{roomId}`,
`GET /timestamp_to_event/{roomId}`, and `GET /event/{eventId}` to hold the event the latter
names, checked and stored as a historical event like those backfill brings).

Only the answer's outline is checked here (a `room` of the room asked about; an event ID and a
timestamp); what of a summary reaches a client is cut down by the service. Failures are as
for the other queries (`remote_queries.ask_peer`): a peer's refusal (403, 404) is passed on as
such, since the peer works and may answer about other rooms; anything else that goes wrong is
a 502 MatrixError: the peer failed.
"""

from __future__ import annotations

from typing import Any

from federation.client import FederationClient, path_segment
from federation.inbound_pdus import InboundPdus, PduError
from federation.remote_queries import ask_peer, peer_failed
from homeserver.protocol.hashing import compute_event_id
from homeserver.protocol.identifiers import is_valid_event_id

# A hierarchy answer carries up to a space's children with their own children: a few
# hundred summaries at most, well under this.
MAX_ANSWER_BYTES = 4 * 1024 * 1024


class FederationRoomInfo:
    def __init__(self, client: FederationClient, pdus: InboundPdus) -> None:
        self.client = client
        self.pdus = pdus

    async def _get(self, server_name: str, path: str, query: dict[str, str]) -> dict[str, Any]:
        return await ask_peer(
            self.client, "GET", server_name, path, query=query, max_bytes=MAX_ANSWER_BYTES
        )

    async def hierarchy(
        self, server_name: str, room_id: str, suggested_only: bool
    ) -> dict[str, Any]:
        answer = await self._get(
            server_name, f"/hierarchy/{path_segment(room_id)}",
            {"suggested_only": "true" if suggested_only else "false"},
        )
        room = answer.get("room")
        if not isinstance(room, dict) or room.get("room_id") != room_id:
            raise peer_failed(f"{server_name} answered /hierarchy without the room asked")
        return answer

    async def timestamp_to_event(
        self, server_name: str, room_id: str, ts: int, direction: str
    ) -> dict[str, Any]:
        answer = await self._get(
            server_name, f"/timestamp_to_event/{path_segment(room_id)}",
            {"ts": str(ts), "dir": direction},
        )
        event_id, event_ts = answer.get("event_id"), answer.get("origin_server_ts")
        if not isinstance(event_id, str) or not is_valid_event_id(event_id) \
                or not isinstance(event_ts, int) or isinstance(event_ts, bool):
            raise peer_failed(f"{server_name} answered /timestamp_to_event without an event")
        return {"event_id": event_id, "origin_server_ts": event_ts}

    async def fetch_event(self, server_name: str, room_id: str, event_id: str) -> None:
        version = await self.pdus.room_version(room_id)
        if version is None:
            raise peer_failed(f"This server does not hold room {room_id}")
        answer = await self._get(server_name, f"/event/{path_segment(event_id)}", {})
        pdus = answer.get("pdus")
        pdu = pdus[0] if isinstance(pdus, list) and len(pdus) == 1 else None
        if not isinstance(pdu, dict) or compute_event_id(pdu, version) != event_id:
            raise peer_failed(f"{server_name} answered /event without {event_id}")
        try:
            await self.pdus.check_and_persist(
                server_name, room_id, pdu, version, fetch_gap=False, historical=True
            )
        except PduError as e:
            raise peer_failed(f"{event_id} from {server_name} was not stored: {e}") from None
