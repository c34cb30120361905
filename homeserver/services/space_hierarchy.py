"""The space hierarchy (spec "Spaces", `GET /rooms/{roomId}/hierarchy`): the rooms of a space
tree the user may see, each with its `m.space.child` events.

Theory of operation. From the root, depth first (a space's children in the spec's order:
`order`, then the child event's timestamp, then room ID), visiting each room once, at most
`max_depth` levels down and `MAX_ROOMS` rooms in all. A room is shown when the user may view or
peek on it: they are joined or invited, its join rule lets anyone join or knock, or its history
is world-readable; a room the user may not see is left out with everything under it, and a root
they may not see is 403. Only rooms this server is in are shown: asking other servers about
theirs (federation `/hierarchy`) is not built, so an unknown child is left out. The walk is
recomputed per page and the token is an offset into it, carrying `max_depth` and
`suggested_only` so that a page asked with other values is refused, as the spec requires.
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg

from homeserver.errors import forbidden, invalid_param, not_found
from homeserver.protocol.state_keys import ENCRYPTION
from homeserver.services.directory import room_chunk
from homeserver.services.requester import Requester
from homeserver.services.rooms.view import RoomView
from storage import rooms as rooms_store
from storage import state as state_store
from storage.database import Database
from storage.directory import DIRECTORY_STATE_TYPES

SPACE_CHILD = "m.space.child"
MAX_ROOMS = 1000
VISIBLE_JOIN_RULES = ("public", "knock", "knock_restricted")
_TOKEN_RE = re.compile(r"h(\d{1,9})_(\d{1,3})_([01])")


class SpaceHierarchy:
    def __init__(self, db: Database, engine: RoomView) -> None:
        self.db = db
        self.engine = engine

    async def hierarchy(
        self, requester: Requester, room_id: str, *, suggested_only: bool, max_depth: int,
        limit: int, from_token: str | None,
    ) -> dict[str, Any]:
        offset = 0
        if from_token is not None:
            match = _TOKEN_RE.fullmatch(from_token)
            if match is None:
                raise invalid_param("'from' is not a pagination token from this server")
            if (int(match[2]), match[3] == "1") != (max_depth, suggested_only):
                raise invalid_param(
                    "suggested_only and max_depth cannot change on paginated requests"
                )
            offset = int(match[1])

        async def walk(conn: asyncpg.Connection) -> list[dict[str, Any]]:
            if await self._entry(conn, requester.user_id, room_id, suggested_only) is None:
                raise forbidden("You are not allowed to view this room")
            return await self._walk(conn, requester.user_id, room_id, suggested_only, max_depth)

        rooms = await self.db.run(walk)
        body: dict[str, Any] = {"rooms": rooms[offset:offset + limit]}
        if offset + limit < len(rooms):
            body["next_batch"] = f"h{offset + limit}_{max_depth}_{int(suggested_only)}"
        return body

    async def summary(self, user_id: str | None, room_id: str) -> dict[str, Any]:
        """`GET /room_summary` (v1.15): the room's chunk, version, encryption and the user's
        membership, under the same rule of who may see it (anyone, unauthenticated, for a
        public or world-readable room); otherwise 404, as for a room this server is not in."""
        async def read(conn: asyncpg.Connection) -> dict[str, Any]:
            entry = await self._entry(conn, user_id, room_id, False)
            if entry is None:
                raise not_found("Room not found, or you may not see it")
            del entry["children_state"]
            entry["room_version"] = await rooms_store.get_room_version(conn, room_id)
            encryption = await state_store.get_current_state_event_id(
                conn, room_id, ENCRYPTION
            )
            if encryption is not None:
                pdu = (await self.engine.get_pdus(conn, [encryption]))[encryption]
                algorithm = pdu["content"].get("algorithm")
                if isinstance(algorithm, str):
                    entry["encryption"] = algorithm
            if user_id is not None:
                membership = await state_store.get_membership(conn, room_id, user_id)
                if membership is not None:
                    entry["membership"] = membership["membership"]
            return entry

        return await self.db.run(read)

    async def _walk(
        self, conn: asyncpg.Connection, user_id: str, root: str, suggested_only: bool,
        max_depth: int,
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        seen = {root}
        stack = [(root, 0)]
        while stack and len(out) < MAX_ROOMS:
            room_id, depth = stack.pop()
            entry = await self._entry(conn, user_id, room_id, suggested_only)
            if entry is None:
                continue
            out.append(entry)
            if depth >= max_depth:
                continue
            children = [e["state_key"] for e in entry["children_state"]]
            for child in reversed(children):  # the stack pops the first child first
                if child not in seen:
                    seen.add(child)
                    stack.append((child, depth + 1))
        return out

    async def _entry(
        self, conn: asyncpg.Connection, user_id: str | None, room_id: str, suggested_only: bool,
    ) -> dict[str, Any] | None:
        """The room's chunk with its children, or None when the user may not see it (or this
        server is not in it)."""
        if await rooms_store.get_room_version(conn, room_id) is None:
            return None
        ids = await state_store.get_current_state(
            conn, room_id, [*DIRECTORY_STATE_TYPES, SPACE_CHILD]
        )
        pdus = await self.engine.get_pdus(conn, list(ids.values()))
        state = {t: pdus[e]["content"] for (t, key), e in ids.items() if key == "" and e in pdus}
        membership = (
            await state_store.get_membership(conn, room_id, user_id) if user_id else None
        )
        if not (
            (membership is not None and membership["membership"] in ("join", "invite"))
            or state.get("m.room.join_rules", {}).get("join_rule") in VISIBLE_JOIN_RULES
            or state.get("m.room.history_visibility", {}).get("history_visibility")
            == "world_readable"
        ):
            return None
        joined = len(await state_store.get_members(conn, room_id, ["join"]))
        entry = room_chunk(room_id, joined, state)
        children = [
            pdus[e] for (t, _), e in ids.items() if t == SPACE_CHILD and e in pdus
            and _valid_child(pdus[e]["content"], suggested_only)
        ]
        children.sort(key=_child_order)
        entry["children_state"] = [
            {k: pdu[k] for k in ("type", "state_key", "content", "sender", "origin_server_ts")}
            for pdu in children
        ]
        return entry


def _valid_child(content: dict[str, Any], suggested_only: bool) -> bool:
    """A child event counts only with a non-empty `via` (spec `m.space.child`)."""
    via = content.get("via")
    if not isinstance(via, list) or not via:
        return False
    return not suggested_only or content.get("suggested") is True


def _child_order(pdu: dict[str, Any]) -> tuple[Any, ...]:
    """The spec's ordering: children with a valid `order` first, by it; then by timestamp."""
    order = pdu["content"].get("order")
    valid = (
        isinstance(order, str) and len(order) <= 50
        and all(0x20 <= ord(c) <= 0x7E for c in order)
    )
    return (0, order, pdu["origin_server_ts"], pdu["state_key"]) if valid else (
        1, "", pdu["origin_server_ts"], pdu["state_key"]
    )
