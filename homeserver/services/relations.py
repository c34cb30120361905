"""Event relationships (spec "Relationships between events", `GET /relations`): the children
of a parent event, optionally of one `rel_type` and event type, a page at a time.

A user may list the children of an event they may see (else 404, as for an event that doesn't
exist), and sees each child as /messages would show it. Pages go by stream position: a
`next_batch` is `r<position>` of the last event returned; a /sync or /messages-style stream
token (`s...`) also works as `from` or `to`. With `recurse` (v1.10) the children of children
are listed too, down to RECURSION_DEPTH generations as Synapse does; filters by relation and
event type then apply to every generation. Each child comes with its bundled aggregations.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from homeserver.errors import invalid_param
from homeserver.services.aggregations import serialize_with_relations
from homeserver.services.event_views import filter_visible
from homeserver.services.requester import Requester
from homeserver.services.room_reads import RoomReads
from homeserver.services.streams import MAX_POSITION, StreamToken, prefixed_position
from storage import events as events_store
from storage import relations as relations_store
from storage.database import Database

END = MAX_POSITION  # no stream position reaches it
RECURSION_DEPTH = 3  # generations followed with `recurse` (Synapse's limit)


def _bound(token: str, *, upper: bool) -> int:
    """An exclusive stream bound from a relations (`r<n>`) or stream (`s...`) token."""
    try:
        own = prefixed_position(token, "r")
        if own is not None:
            return own
        position = StreamToken.parse(token).events
    except ValueError:
        raise invalid_param("Not a pagination token from this server") from None
    # A stream token is the position of the last event seen: seen ones are excluded.
    return min(position + 1, END) if upper else position


class Relations:
    def __init__(self, db: Database, reads: RoomReads) -> None:
        self.db = db
        self.reads = reads

    async def children(
        self, requester: Requester, room_id: str, parent_id: str, *, rel_type: str | None,
        event_type: str | None, from_token: str | None, to_token: str | None, limit: int,
        backwards: bool, recurse: bool | None = None,
    ) -> dict[str, Any]:
        """A page of the children; `recurse`: None when the client didn't give it (no
        `recursion_depth` in the answer then, as relations.yaml requires)."""
        await self.reads.event(requester, room_id, parent_id)  # 404 if they may not see it
        after, before = 0, END
        if backwards:
            before = _bound(from_token, upper=True) if from_token else END
            after = _bound(to_token, upper=False) if to_token else 0
        else:
            after = _bound(from_token, upper=False) if from_token else 0
            before = _bound(to_token, upper=True) if to_token else END

        async def read(conn: asyncpg.Connection) -> dict[str, Any]:
            if recurse:
                stored = await relations_store.get_descendants(
                    conn, room_id, parent_id, rel_type=rel_type, event_type=event_type,
                    after=after, before=before, limit=limit, newest_first=backwards,
                    generations=RECURSION_DEPTH,
                )
            else:
                stored = await events_store.get_relations(
                    conn, room_id, parent_id, rel_type=rel_type, event_type=event_type,
                    after=after, before=before, limit=limit, newest_first=backwards,
                )
            visible = await filter_visible(conn, self.reads.engine, requester.user_id, stored)
            body: dict[str, Any] = {
                "chunk": await serialize_with_relations(
                    conn, self.reads.engine, visible, requester, now=self.reads.clock.now_ms()
                ),
            }
            if recurse is not None:
                body["recursion_depth"] = RECURSION_DEPTH if recurse else 1
            if len(stored) == limit:
                body["next_batch"] = f"r{stored[-1].stream_ordering}"
            if from_token is not None:
                body["prev_batch"] = from_token
            return body

        return await self.db.run(read)
