"""The space hierarchy (spec "Spaces", client `GET /rooms/{roomId}/hierarchy`, federation
`GET /hierarchy/{roomId}`) and room summaries (client `GET /room_summary/{roomIdOrAlias}`).

Theory of operation. From the root, depth first (a space's children in the spec's order:
`order`, then the child event's timestamp, then room ID), visiting each room once, at most
`max_depth` levels down and `MAX_ROOMS` rooms in all. A room is shown to whoever may preview it
(`protocol/room_previews.py`: members, anyone for public, knockable or world-readable rooms,
members of an allowed room for restricted ones); a room the user may not see is left out with
everything under it, and a root they may not see is 403. A root this server does not hold is
shown to a user invited to it (or who knocked), asked of the inviting server.

A child this server is not in is asked of the servers its `m.space.child` event names (`via`),
through federation `/hierarchy`; the first that answers gives its summary and its children's,
which are kept for the rest of the walk so that a remote space costs one request, not one per
child. Another server's answer is trusted only for what it says of the room, not for who may
see it: that is judged here again, by the summary's join rule and `allowed_room_ids` against
this server's memberships. Answers are reused for `REMOTE_TTL_S` (the spec says to cache them;
Synapse keeps them 5 minutes), so that the pages of one walk ask once. One walk asks at most
`MAX_ASKS` servers and never again one that failed (not one that refused), so that a space of
many children on unreachable servers costs a few request timeouts, not one per child.

The walk is recomputed per page and the token is an offset into it, carrying `max_depth` and
`suggested_only` so that a page asked with other values is refused, as the spec requires.

Federation `/hierarchy` answers another server with the room and its children this server holds
(`children` those the asking server may preview, `inaccessible_children` the others; children
it does not hold are left out), judged for the server as for a user: a server with a user joined
counts as a member. Only the first `MAX_SERVED_CHILDREN` children are judged and summarised, and
membership of the rooms a join rule (or a peer's `allowed_room_ids`, of which at most
`MAX_ALLOWED_ROOMS` are kept) names is asked in one query: what any server's request, or any
peer's answer, costs here is bounded.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from homeserver.errors import MatrixError, forbidden, invalid_param, not_found
from homeserver.protocol.events import membership_servers
from homeserver.protocol.identifiers import is_valid_server_name
from homeserver.protocol.restricted_joins import is_restricted
from homeserver.protocol.room_previews import (
    SPACE_CHILD,
    child_order,
    clean_remote_summary,
    is_valid_child,
    open_to_all,
    rooms_allowing,
)
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS
from homeserver.services.clock import Clock
from homeserver.services.directory import room_chunk
from homeserver.services.remote_room_info import RemoteRoomInfo
from homeserver.services.requester import Requester
from homeserver.services.rooms.view import RoomView
from storage import rooms as rooms_store
from storage import state as state_store
from storage.database import Database
from storage.directory import DIRECTORY_STATE_TYPES

MAX_ROOMS = 1000
# Children of a space judged and summarised per federation /hierarchy answer (Synapse's
# MAX_ROOMS_PER_SPACE): what one request of any server makes this server load is bounded.
MAX_SERVED_CHILDREN = 50
# The servers of a child's `via` asked about it, at most (each may take a request timeout).
MAX_VIA = 3
# Servers one walk (or summary) asks in all.
MAX_ASKS = 10
# How long another server's /hierarchy answer is reused, and how many answers are kept: at most
# MAX_CACHED, holding at most MAX_CACHED_CHILDREN child events in all (each answer is up to
# MAX_SERVED_CHILDREN + 1 summaries of up to MAX_CHILDREN_STATE children: peers choose).
REMOTE_TTL_S = 300.0
MAX_CACHED = 1000
MAX_CACHED_CHILDREN = 20_000
_TOKEN_RE = re.compile(r"h(\d{1,9})_(\d{1,3})_([01])")
_SUMMARY_TYPES = [*DIRECTORY_STATE_TYPES, "m.room.encryption", SPACE_CHILD]


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who looks: a local user (None: unauthenticated), or another server over federation."""

    user_id: str | None = None
    server: str | None = None


@dataclass(frozen=True, slots=True)
class _Room:
    """A room's summary (with `children_state`) and who may preview it: of a room this server
    holds, or as another server told it."""

    entry: dict[str, Any]
    allowed: list[str]  # the rooms whose members may preview it (restricted join rules)


@dataclass(slots=True)
class _Walk:
    """What one walk learnt of other servers: summaries they gave (a space's answer carries
    its children's), the servers that failed, and how many were asked."""

    known: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)
    asks: int = 0


class SpaceHierarchy:
    def __init__(
        self, db: Database, engine: RoomView, server_name: str, remote: RemoteRoomInfo,
        clock: Clock,
    ) -> None:
        self.db = db
        self.engine = engine
        self.server_name = server_name
        self.remote = remote
        self.clock = clock
        # (room ID, suggested_only) -> (expiry, room summary, its children's summaries)
        self._answers: OrderedDict[
            tuple[str, bool], tuple[float, dict[str, Any], list[dict[str, Any]]]
        ] = OrderedDict()
        self._cached_children = 0  # child events held in `_answers`

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
        viewer = Viewer(user_id=requester.user_id)
        held, visible, via = await self.db.run(lambda c: self._root(c, viewer, room_id))
        if (held and not visible) or (not held and not via):
            raise forbidden("You are not allowed to view this room")
        rooms = await self._walk(viewer, room_id, via, suggested_only, max_depth)
        if not rooms:  # a space the user is invited to that no server told us about
            raise forbidden("You are not allowed to view this room")
        body: dict[str, Any] = {"rooms": rooms[offset:offset + limit]}
        if offset + limit < len(rooms):
            body["next_batch"] = f"h{offset + limit}_{max_depth}_{int(suggested_only)}"
        return body

    async def summary(
        self, user_id: str | None, room_id: str, via: Sequence[str]
    ) -> dict[str, Any]:
        """`GET /room_summary` (v1.15): the room's summary and the user's membership, under
        the hierarchy's rule of who may see it (anyone, unauthenticated, for a public or
        world-readable room); a room this server is not in is asked of the servers in
        ``via``. 404 for a room nobody told us of or the user may not see."""
        entry = await self._visible(Viewer(user_id=user_id), room_id, via, False, _Walk())
        if entry is None:
            raise not_found("Room not found, or you may not see it")
        entry = {k: v for k, v in entry.items() if k not in ("children_state", "allowed_room_ids")}
        if user_id is not None:
            membership = await self.db.run(
                lambda c: state_store.get_membership(c, room_id, user_id)
            )
            if membership is not None:
                entry["membership"] = membership["membership"]
        return entry

    async def federation_hierarchy(
        self, origin: str, room_id: str, suggested_only: bool
    ) -> dict[str, Any]:
        """Federation `GET /hierarchy/{roomId}` for the server ``origin``."""
        viewer = Viewer(server=origin)

        async def read(conn: asyncpg.Connection) -> dict[str, Any]:
            room = await self._local(conn, room_id, suggested_only)
            if room is None or not await self._may_see(conn, viewer, room):
                raise not_found("Room not found, or your server may not see it")
            children: list[dict[str, Any]] = []
            inaccessible: list[str] = []
            for child in room.entry["children_state"][:MAX_SERVED_CHILDREN]:
                held = await self._local(conn, child["state_key"], suggested_only)
                if held is None:
                    continue
                if await self._may_see(conn, viewer, held):
                    children.append(_for_federation(held))
                else:
                    inaccessible.append(child["state_key"])
            return {
                "room": _for_federation(room), "children": children,
                "inaccessible_children": inaccessible,
            }

        return await self.db.run(read)

    async def _root(
        self, conn: asyncpg.Connection, viewer: Viewer, room_id: str
    ) -> tuple[bool, bool, list[str]]:
        """Whether this server holds the root and the user may see it; for a root it does not
        hold, the servers the user's invite (or knock) points to, to ask about it (a space's
        invite is previewed before joining, as in Synapse)."""
        held = await self._local(conn, room_id, False)
        if held is not None:
            return True, await self._may_see(conn, viewer, held), []
        row = await state_store.get_membership(conn, room_id, viewer.user_id) \
            if viewer.user_id is not None else None
        if row is None or row["membership"] not in ("invite", "knock"):
            return False, False, []
        pdu = (await self.engine.get_pdus(conn, [row["event_id"]])).get(row["event_id"], {})
        return False, False, membership_servers(pdu)

    async def _walk(
        self, viewer: Viewer, root: str, root_via: Sequence[str], suggested_only: bool,
        max_depth: int,
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        seen = {root}
        walk = _Walk()
        stack: list[tuple[str, Sequence[str], int]] = [(root, root_via, 0)]
        while stack and len(out) < MAX_ROOMS:
            room_id, via, depth = stack.pop()
            entry = await self._visible(viewer, room_id, via, suggested_only, walk)
            if entry is None:
                continue
            out.append(entry)
            if depth >= max_depth:
                continue
            for child in reversed(entry["children_state"]):  # the stack pops the first first
                if child["state_key"] not in seen:
                    seen.add(child["state_key"])
                    stack.append((child["state_key"], child["content"]["via"], depth + 1))
        return out

    async def _visible(
        self, viewer: Viewer, room_id: str, via: Sequence[str], suggested_only: bool,
        walk: _Walk,
    ) -> dict[str, Any] | None:
        """The room's client summary when ``viewer`` may see it, from this server's copy or,
        for a room it does not hold, from another server's."""
        async def local(conn: asyncpg.Connection) -> tuple[bool, dict[str, Any] | None]:
            held = await self._local(conn, room_id, suggested_only)
            if held is None:
                return False, None
            return True, held.entry if await self._may_see(conn, viewer, held) else None

        held, entry = await self.db.run(local)
        if held:
            return entry
        return await self._remote_visible(viewer, room_id, via, suggested_only, walk)

    async def _remote_visible(
        self, viewer: Viewer, room_id: str, via: Sequence[str], suggested_only: bool,
        walk: _Walk,
    ) -> dict[str, Any] | None:
        summary = walk.known.get(room_id)
        if summary is None or "children_state" not in summary:
            summary = await self._ask(room_id, via, suggested_only, walk) or summary
        if summary is None:
            return None
        room = _Room(summary, summary.get("allowed_room_ids", []))
        if not await self.db.run(lambda conn: self._may_see(conn, viewer, room)):
            return None
        children = [
            c for c in summary.get("children_state", [])
            if is_valid_child(c["content"], suggested_only)
        ]
        entry = {k: v for k, v in summary.items() if k != "allowed_room_ids"}
        entry["children_state"] = children
        return entry

    async def _ask(
        self, room_id: str, via: Sequence[str], suggested_only: bool, walk: _Walk
    ) -> dict[str, Any] | None:
        """The room's summary from the first server of ``via`` that gives one (or from an
        answer still fresh); its children's summaries go into ``walk.known``. None when no
        server does."""
        answer = self._cached(room_id, suggested_only)
        if answer is None:
            answer = await self._ask_servers(room_id, via, suggested_only, walk)
        if answer is None:
            return None
        room, children = answer
        for child in children:
            walk.known.setdefault(child["room_id"], child)
        walk.known[room_id] = room
        return room

    async def _ask_servers(
        self, room_id: str, via: Sequence[str], suggested_only: bool, walk: _Walk
    ) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        servers = [
            s for s in via if isinstance(s, str) and is_valid_server_name(s)
            and s != self.server_name and s not in walk.failed
        ][:MAX_VIA]
        for server in servers:
            if walk.asks >= MAX_ASKS:
                return None
            walk.asks += 1
            try:
                answer = await self.remote.hierarchy(server, room_id, suggested_only)
            except MatrixError as e:
                if e.status >= 500:  # a refusal is about this room, not the server
                    walk.failed.add(server)
                continue
            room = clean_remote_summary(answer.get("room"), room_id)
            if room is None:
                walk.failed.add(server)
                continue
            room.setdefault("children_state", [])
            listed = answer.get("children")
            children = [
                c for c in map(clean_remote_summary, listed if isinstance(listed, list) else [])
                if c is not None
            ][:MAX_SERVED_CHILDREN]
            self._remember((room_id, suggested_only), room, children)
            return room, children
        return None

    def _remember(
        self, key: tuple[str, bool], room: dict[str, Any], children: list[dict[str, Any]]
    ) -> None:
        """Keep a peer's answer for REMOTE_TTL_S, evicting the oldest past either bound."""
        self._forget(key)
        self._answers[key] = (self.clock.monotonic() + REMOTE_TTL_S, room, children)
        self._cached_children += _child_events(room, children)
        while self._answers and (
            len(self._answers) > MAX_CACHED or self._cached_children > MAX_CACHED_CHILDREN
        ):
            self._forget(next(iter(self._answers)))

    def _forget(self, key: tuple[str, bool]) -> None:
        found = self._answers.pop(key, None)
        if found is not None:
            self._cached_children -= _child_events(found[1], found[2])

    def _cached(
        self, room_id: str, suggested_only: bool
    ) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """A fresh earlier answer about the room (copies: the walk's entries are its own)."""
        found = self._answers.get((room_id, suggested_only))
        if found is None:
            return None
        expiry, room, children = found
        if expiry <= self.clock.monotonic():
            self._forget((room_id, suggested_only))
            return None
        return dict(room), [dict(c) for c in children]

    async def _local(
        self, conn: asyncpg.Connection, room_id: str, suggested_only: bool
    ) -> _Room | None:
        """The summary of a room this server is in (a user of its joined: the state of a room
        it was only invited to, or that all its users left, is not to be trusted), with its
        children; None for any other."""
        version_id = await rooms_store.get_room_version(conn, room_id)
        if version_id is None:
            return None
        if not await state_store.server_has_membership_in_any(
            conn, self.server_name, [room_id], ["join"]
        ):
            return None
        ids = await state_store.get_current_state(conn, room_id, _SUMMARY_TYPES)
        pdus = await self.engine.get_pdus(conn, list(ids.values()))
        state = {t: pdus[e]["content"] for (t, key), e in ids.items() if key == "" and e in pdus}
        entry = room_chunk(
            room_id, await state_store.count_members(conn, room_id, ["join"]), state
        )
        entry["room_version"] = version_id
        algorithm = state.get("m.room.encryption", {}).get("algorithm")
        if isinstance(algorithm, str):
            entry["encryption"] = algorithm
        children = [
            pdus[e] for (t, _), e in ids.items() if t == SPACE_CHILD and e in pdus
            and is_valid_child(pdus[e]["content"], suggested_only)
        ]
        entry["children_state"] = sorted((
            {k: pdu[k] for k in ("type", "state_key", "content", "sender", "origin_server_ts")}
            for pdu in children
        ), key=child_order)
        version = KNOWN_ROOM_VERSIONS.get(version_id)
        join_rules = state.get("m.room.join_rules", {})
        restricted = version is not None and is_restricted(join_rules, version)
        return _Room(entry, rooms_allowing(join_rules, restricted))

    async def _may_see(self, conn: asyncpg.Connection, viewer: Viewer, room: _Room) -> bool:
        return (
            open_to_all(room.entry)
            or await self._member_of(conn, viewer, [room.entry["room_id"]], ("join", "invite"))
            or await self._member_of(conn, viewer, room.allowed, ("join",))
        )

    async def _member_of(
        self, conn: asyncpg.Connection, viewer: Viewer, room_ids: Sequence[str],
        memberships: tuple[str, ...],
    ) -> bool:
        """Whether the viewer is in one of the rooms with one of the memberships (a server:
        one of its users; an invited user counts, as in Synapse's `is_host_invited`), asked in
        one query however many rooms a join rule (or a peer's summary) names."""
        if not room_ids:
            return False
        if viewer.server is not None:
            return await state_store.server_has_membership_in_any(
                conn, viewer.server, room_ids, memberships
            )
        if viewer.user_id is not None:
            return await state_store.has_membership_in_any(
                conn, viewer.user_id, room_ids, memberships
            )
        return False


def _for_federation(room: _Room) -> dict[str, Any]:
    """A summary for another server: with `allowed_room_ids`, which it needs to judge for its
    users (clients are not given them)."""
    return {**room.entry, "allowed_room_ids": room.allowed}


def _child_events(room: dict[str, Any], children: list[dict[str, Any]]) -> int:
    """The child events an answer holds: the weight of a cached answer."""
    return sum(len(summary.get("children_state", ())) for summary in (room, *children))
