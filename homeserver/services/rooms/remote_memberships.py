"""Our users' memberships of rooms that live on other servers: joining one (from a send_join
answer) and the invites and rejections of rooms this server is not in.

Both start where this server holds nothing of the room; everything after the join takes the
remote events' path of `remote.py`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from homeserver.errors import MatrixError
from homeserver.protocol import hashing
from homeserver.protocol.event_refs import referenced_event_ids
from homeserver.protocol.room_versions import RoomVersion
from homeserver.protocol.state_keys import CREATE
from homeserver.services.rooms.outliers import Outliers
from homeserver.services.rooms.remote import Received, RemoteEvents, state_map
from homeserver.services.rooms.writes import EventWrites, PersistedEvent, RoomTxn, stored_event
from storage import event_graph
from storage import events as events_store
from storage import rooms as rooms_store
from storage import state as state_store
from storage.streams import Slot


class RemoteMemberships:
    def __init__(self, remote: RemoteEvents, outliers: Outliers) -> None:
        self.remote = remote
        self.outliers = outliers
        self.cache = remote.cache
        self.writes = remote.writes

    # ---- joining a room that lives on other servers ------------------------------------------

    async def join_room(
        self, room_id: str, room_version: RoomVersion, join: Mapping[str, Any],
        state: Sequence[Mapping[str, Any]], auth_chain: Sequence[Mapping[str, Any]],
    ) -> Received:
        """Persist our join to a remote room from a send_join answer: the room's state before
        the join and its auth chain become outliers, and the join the room's first event here."""
        create = next((e for e in state if e.get("type") == "m.room.create"), None)
        content = create.get("content") if create is not None else None
        if not isinstance(content, dict) or (
            content.get("room_version", "1") != room_version.identifier
        ):
            raise MatrixError(
                502, "M_UNKNOWN",
                "The resident server sent no m.room.create of the room version it named",
            )
        assert create is not None
        async def record(conn: asyncpg.Connection) -> None:
            await rooms_store.insert_room_if_absent(
                conn, room_id, room_version.identifier, str(create.get("sender")),
                int(create.get("origin_server_ts", 0)), False,
            )
            await rooms_store.set_room_version(conn, room_id, room_version.identifier)

        await self.writes.db.transaction(record, name="insert_remote_room")
        self.cache.remember_room(room_id, room_version)
        accepted = await self.outliers.store(room_id, [*auth_chain, *state])
        state_ids = state_map(state, room_version, accepted)
        if CREATE not in state_ids:
            raise MatrixError(502, "M_UNKNOWN", "The room's m.room.create was not valid")
        prev_states = {p: state_ids for p in referenced_event_ids(join["prev_events"])}
        return await self.remote.receive(room_id, join, prev_states=prev_states)


    # ---- memberships of rooms this server is not in ------------------------------------------

    async def store_out_of_band(
        self, room_id: str, room_version: RoomVersion, pdu: Mapping[str, Any]
    ) -> str:
        """Record a local user's membership event of a room this server is not in (an invite
        from another server, or the leave that rejects it): no state, no forward extremity,
        but a stream position and a membership row, so that the user's /sync shows it."""
        event_id = hashing.compute_event_id(pdu, room_version)
        user_id = str(pdu["state_key"])

        async def store(conn: asyncpg.Connection, slot: Slot) -> PersistedEvent | None:
            slot.restart()
            await rooms_store.insert_room_if_absent(
                conn, room_id, room_version.identifier, str(pdu["sender"]),
                int(pdu["origin_server_ts"]), False,
            )
            if await events_store.get_events(conn, [event_id]):
                return None
            txn = RoomTxn(conn, room_id, room_version, EventWrites(), set())
            position = slot.nth(0)
            previous = await event_graph.get_latest_position(conn, room_id)
            persisted = await self.writes.stage(
                txn, dict(pdu), stored_event(room_id, event_id, pdu, None, position=position),
                {}, previous_position=previous, federate=False,
            )
            await txn.writes.flush(conn, room_id, None)
            await state_store.upsert_membership(
                conn, room_id, user_id, str(pdu["content"]["membership"]), event_id, position
            )
            return persisted

        self.cache.remember_room(room_id, room_version)
        persisted = await self.writes.write(room_id, "store_out_of_band", store)
        if persisted is not None:
            self.writes.after_persist(persisted)
        return event_id
