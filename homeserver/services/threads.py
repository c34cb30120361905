"""Threads (spec "Threading", `GET /rooms/{roomId}/threads`): a room's thread roots, the most
recently active first, each with its `m.thread` aggregation (latest reply, reply count,
whether the user took part).

A thread is an event with `m.thread` replies (index `events_thread_replies`). The user must be
able to read the room, and sees the roots and latest replies they may see, as /messages would
show them. Pages go by the position of each thread's latest reply: `next_batch` is
`t<position>` of the last thread returned, so threads that gain a reply meanwhile move to the
front and are not repeated further down.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from homeserver.errors import invalid_param
from homeserver.protocol.state_keys import CREATE
from homeserver.services.aggregations import serialize_with_relations
from homeserver.services.event_views import filter_visible, load_events
from homeserver.services.requester import Requester
from homeserver.services.room_reads import RoomReads
from homeserver.services.streams import MAX_POSITION, prefixed_position
from storage import events as events_store
from storage.database import Database

END = MAX_POSITION  # no stream position reaches it


class Threads:
    def __init__(self, db: Database, reads: RoomReads) -> None:
        self.db = db
        self.reads = reads

    async def threads(
        self, requester: Requester, room_id: str, *, participated_only: bool,
        from_token: str | None, limit: int,
    ) -> dict[str, Any]:
        before = END
        if from_token is not None:
            try:
                position = prefixed_position(from_token, "t")
            except ValueError:
                position = None
            if position is None:
                raise invalid_param("'from' is not a pagination token from this server")
            before = position
        # 403 for a room the user may not read, 404 for one that doesn't exist.
        await self.reads.state_event(requester, room_id, *CREATE)
        user_id = requester.user_id
        engine = self.reads.engine

        async def read(conn: asyncpg.Connection) -> dict[str, Any]:
            rows = await events_store.get_threads(
                conn, room_id, before=before, limit=limit,
                participant=user_id if participated_only else None,
            )
            roots = [
                e for e in await load_events(conn, [r["root"] for r in rows])
                if e.room_id == room_id and not e.rejected
            ]
            visible = await filter_visible(conn, engine, user_id, roots)
            chunk = []
            # Each root's `m.thread` bundle has the count and latest reply the reader may see
            # (ignored users' replies left out); a thread with none of those is not listed.
            for event in await serialize_with_relations(
                conn, engine, visible, requester, now=self.reads.clock.now_ms()
            ):
                if "m.thread" in event["unsigned"].get("m.relations", {}):
                    chunk.append(event)
            body: dict[str, Any] = {"chunk": chunk}
            if len(rows) == limit:
                body["next_batch"] = f"t{rows[-1]['latest']}"
            return body

        return await self.db.run(read)
