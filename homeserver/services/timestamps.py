"""Jump to date (client `GET /rooms/{roomId}/timestamp_to_event`): the event nearest a time,
from this server's copy of the room or, where that copy has a gap, from the room's other servers
(server-server-api.md `GET /timestamp_to_event/{roomId}`).

Theory of operation, as Synapse's `TimestampLookupHandler`: the local answer (`RoomReads.
event_near`, the events the user may see among those nearest the time) stands unless this
server holds nothing in that direction or the event it found is next to a gap (one of its prev
events is missing: the room's history before our join, or a hole not yet filled), where closer
events may exist that only others hold. Then the servers with users in the room are asked in
the order they joined (those in the room longest are likeliest to have its history, as the spec
suggests); an answer is taken when it lies in the direction asked, is closer to the time than
the local one, and the event, fetched through `/event` and stored like a backfilled one if this
server lacks it, really has the timestamp the server gave and is visible to the user.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from homeserver.errors import MatrixError, not_found
from homeserver.protocol.identifiers import server_name_of
from homeserver.services.event_views import filter_visible, load_events
from homeserver.services.remote_room_info import RemoteRoomInfo
from homeserver.services.requester import Requester
from homeserver.services.room_reads import RoomReads
from homeserver.services.rooms.view import RoomView
from storage import event_graph
from storage import state as state_store
from storage.database import Database

log = logging.getLogger(__name__)

# Servers asked at most, each for at most a request timeout.
MAX_SERVERS = 5


class JumpToDate:
    def __init__(
        self, db: Database, engine: RoomView, reads: RoomReads, remote: RemoteRoomInfo,
        server_name: str,
    ) -> None:
        self.db = db
        self.engine = engine
        self.reads = reads
        self.remote = remote
        self.server_name = server_name

    async def event_near(
        self, requester: Requester, room_id: str, ts: int, forwards: bool
    ) -> dict[str, Any]:
        local: dict[str, Any] | None
        try:
            local = await self.reads.event_near(requester, room_id, ts, forwards)
        except MatrixError as e:
            if e.errcode != "M_NOT_FOUND":
                raise
            local = None
        if local is not None and not await self.db.run(
            lambda conn: event_graph.has_missing_prev_events(conn, local["event_id"])
        ):
            return local
        for server in await self.db.run(lambda conn: self._servers(conn, room_id)):
            try:
                answer = await self.remote.timestamp_to_event(
                    server, room_id, ts, "f" if forwards else "b"
                )
            except MatrixError as e:
                log.info("timestamp_to_event of %s on %s: %s", room_id, server, e.error)
                continue
            if _closer(answer, local, ts, forwards) and await self._held_and_visible(
                requester, room_id, server, answer
            ):
                return answer
        if local is None:
            raise not_found(f"No event found {'after' if forwards else 'before'} {ts}")
        return local

    async def _servers(self, conn: asyncpg.Connection, room_id: str) -> list[str]:
        """The other servers with users joined, in the order of their first join."""
        servers: dict[str, None] = {}
        for member in await state_store.get_members(conn, room_id, ["join"]):
            servers.setdefault(server_name_of(member["user_id"]))
        servers.pop(self.server_name, None)
        return list(servers)[:MAX_SERVERS]

    async def _held_and_visible(
        self, requester: Requester, room_id: str, server: str, answer: dict[str, Any]
    ) -> bool:
        event_id = answer["event_id"]

        async def check(conn: asyncpg.Connection) -> bool | None:
            """None: not held; else whether it is what the server said, and visible."""
            stored = await load_events(conn, [event_id])
            if not stored or stored[0].room_id != room_id or stored[0].rejected:
                return None
            pdu = (await self.engine.get_pdus(conn, [event_id]))[event_id]
            if pdu["origin_server_ts"] != answer["origin_server_ts"]:
                return False
            return bool(await filter_visible(conn, self.engine, requester.user_id, stored))

        held = await self.db.run(check)
        if held is None:
            try:
                await self.remote.fetch_event(server, room_id, event_id)
            except MatrixError as e:
                log.info("event %s from %s not fetched: %s", event_id, server, e.error)
                return False
            held = await self.db.run(check)
        return held is True


def _closer(answer: dict[str, Any], local: dict[str, Any] | None, ts: int, forwards: bool) -> bool:
    """Whether another server's answer lies the way asked and nearer `ts` than ours."""
    found = answer["origin_server_ts"]
    if (found < ts) if forwards else (found > ts):
        return False
    return local is None or abs(found - ts) < abs(local["origin_server_ts"] - ts)
