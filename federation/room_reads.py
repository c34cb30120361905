"""What peers read of a room's DAG: single events, the state before an event, auth chains, the
gap before an event and history to backfill (server-server-api.md "Retrieving events",
"Backfilling and retrieving missing events", "Retrieving event authorisation information").

Who may read: a server the room's `m.room.server_acl` admits and that has at least one user
joined in the room's current state; 403 otherwise, 404 for a room or an event this server does
not hold. /backfill and /get_missing_events, which walk the DAG from the events they name, walk
only from those of the room and ignore the others (unknown, rejected or of another room), as
Synapse does: the answer may be empty, but nothing of another room is reached.

Events read one by one (/event, /backfill, /get_missing_events) are also judged by the history
visibility at each of them: under `joined` (`invited`) an event is served whole only when one
of the server's users was joined (or invited) there, and otherwise redacted, so that the asker
can still walk the DAG through it; so are those past their room's retention cutoff, before the
retention sweep deletes or censors them. State and auth chains are served whole: the asker
needs them to check events it already may see.

Rejected events are never served, as events or as state; outliers (auth chains and state
fetched for us) are served as events and in auth chains, but have no state here, so the state
at one is a 404. Redacted events go out redacted: hashes and signatures stay, so their IDs
still verify and the receiver, finding the content hash off, redacts its copy too. So do the
events of an erased local user, to every server and in state and auth chains as well (as
Synapse's `filter_events_for_server`): a server that has them whole keeps its copy, one that
fetches them after the erasure gets no content.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import asyncpg

from homeserver.errors import forbidden, not_found
from homeserver.protocol.hashing import create_event_id
from homeserver.protocol.redaction import redact_event
from homeserver.protocol.room_versions import RoomVersion
from homeserver.services.clock import Clock
from homeserver.services.event_views import drop_expired
from homeserver.services.rooms.state import state_before_event
from homeserver.services.rooms.view import RoomView
from storage import event_graph
from storage import events as events_store
from storage import state as state_store
from storage.database import Database
from storage.events import StoredEvent

# The most events one get_missing_events or backfill answer holds, whatever the asker wants.
MAX_MISSING_EVENTS = 20
MAX_BACKFILL_EVENTS = 100

_HISTORY_VISIBILITY = ("m.room.history_visibility", "")
# History visibility -> the memberships of one of its users that show a server an event.
_SHOWN_TO = {"joined": {"join"}, "invited": {"join", "invite"}}

# (room_id, server) -> whether the room's server ACL admits the server.
AclCheck = Callable[[str, str], Awaitable[bool]]
Pdu = dict[str, Any]


class RoomReads:
    def __init__(
        self, db: Database, engine: RoomView, server_name: str, server_allowed: AclCheck,
        clock: Clock,
    ) -> None:
        self.db = db
        self.clock = clock
        self.engine = engine
        self.server_name = server_name
        self.server_allowed = server_allowed

    def transaction(self, pdus: list[Pdu]) -> dict[str, Any]:
        """The transaction shape /event and /backfill answer in."""
        return {"origin": self.server_name, "origin_server_ts": self.clock.now_ms(), "pdus": pdus}

    async def event(self, origin: str, event_id: str) -> Pdu:
        found: list[StoredEvent] = await self._read(
            lambda conn: _require(conn, None, [event_id])
        )
        version = await self._admit(found[0].room_id, origin)
        return (await self._visible_to(origin, found, version))[0]

    async def state_ids(
        self, origin: str, room_id: str, event_id: str
    ) -> tuple[list[str], list[str]]:
        """The IDs of the state before the event and of its auth chain."""
        _, state, chain = await self._state_and_chain(origin, room_id, event_id)
        return [e.event_id for e in state], [e.event_id for e in chain]

    async def state(
        self, origin: str, room_id: str, event_id: str
    ) -> tuple[list[Pdu], list[Pdu]]:
        """The state events before the event and their auth chain."""
        version, state, chain = await self._state_and_chain(origin, room_id, event_id)
        return await self._served(state, version), await self._served(chain, version)

    async def event_auth(self, origin: str, room_id: str, event_id: str) -> list[Pdu]:
        version = await self._admit(room_id, origin)

        async def read(conn: asyncpg.Connection) -> list[StoredEvent]:
            await _require(conn, room_id, [event_id])
            return await auth_chain_events(conn, room_id, version, [event_id])

        return await self._served(await self._read(read), version)

    async def missing_events(
        self, origin: str, room_id: str, earliest: Sequence[str], latest: Sequence[str],
        limit: int, min_depth: int,
    ) -> list[Pdu]:
        """The events before `latest` not reachable past `earliest`, oldest first."""
        version = await self._admit(room_id, origin)

        async def read(conn: asyncpg.Connection) -> list[StoredEvent]:
            seeds = await _of_room(conn, room_id, latest)
            ids = await event_graph.get_missing_event_ids(
                conn, room_id, earliest, seeds, min(limit, MAX_MISSING_EVENTS), min_depth
            )
            return await _load_all(conn, ids)

        return await self._visible_to(origin, await self._read(read), version)

    async def backfill(
        self, origin: str, room_id: str, event_ids: Sequence[str], limit: int
    ) -> list[Pdu]:
        """The given events and those before them, newest first."""
        version = await self._admit(room_id, origin)

        async def read(conn: asyncpg.Connection) -> list[StoredEvent]:
            seeds = await _of_room(conn, room_id, event_ids)
            ids = await event_graph.get_backfill_ids(
                conn, room_id, seeds, min(limit, MAX_BACKFILL_EVENTS)
            )
            return await _load_all(conn, ids)

        return await self._visible_to(origin, await self._read(read), version)

    async def event_near(
        self, origin: str, room_id: str, ts: int, forwards: bool
    ) -> dict[str, Any]:
        """`/timestamp_to_event`: the event this server holds nearest `ts` in the direction
        asked; the asker reads it through /event, which judges its visibility."""
        await self._admit(room_id, origin)

        async def read(conn: asyncpg.Connection) -> dict[str, Any]:
            ids = await events_store.get_events_near_ts(
                conn, room_id, ts, forwards=forwards, limit=1
            )
            if not ids:
                raise not_found(f"No event found {'after' if forwards else 'before'} {ts}")
            pdu = (await self.engine.get_pdus(conn, ids))[ids[0]]
            return {"event_id": ids[0], "origin_server_ts": pdu["origin_server_ts"]}

        result: dict[str, Any] = await self._read(read)
        return result

    # ---- helpers ------------------------------------------------------------------------------

    async def _read(self, fn: Callable[[asyncpg.Connection], Awaitable[Any]]) -> Any:
        return await self.db.run(fn, name="federation_room_read")

    async def _admit(self, room_id: str, origin: str) -> RoomVersion:
        """The room's version, once `origin` may read the room (404 for an unknown room)."""
        async def read(conn: asyncpg.Connection) -> tuple[RoomVersion, set[str]]:
            return (
                await self.engine.room_version(conn, room_id),
                await self.engine.joined_members(conn, room_id),
            )

        version, members = await self._read(read)
        if not await self.server_allowed(room_id, origin):
            raise forbidden(f"{origin} is denied by the room's server ACL")
        if not any(m.partition(":")[2] == origin for m in members):
            raise forbidden(f"{origin} has no user in room {room_id}")
        return version

    async def _visible_to(
        self, origin: str, events: Sequence[StoredEvent], version: RoomVersion
    ) -> list[Pdu]:
        """The events as `origin` may see them: whole, or redacted where the history
        visibility at an event hides it from the server's users there."""
        hidden: set[str] = await self._read(lambda conn: self._hidden(conn, origin, events))
        return await self._served(events, version, hidden)

    async def _served(
        self, events: Sequence[StoredEvent], version: RoomVersion,
        hidden: set[str] | None = None,
    ) -> list[Pdu]:
        """The PDUs as they go out: as received, or redacted (redacted ones, `hidden` ones
        and those of erased senders)."""
        senders = {e.sender for e in events}
        erased: set[str] = await self._read(lambda conn: self.engine.erased(conn, senders))
        out = []
        for event in events:
            pdu: Pdu = json.loads(event.json)
            redact = (
                event.redacted_by or event.sender in erased
                or (hidden is not None and event.event_id in hidden)
            )
            out.append(redact_event(pdu, version) if redact else pdu)
        return out

    async def _hidden(
        self, conn: asyncpg.Connection, origin: str, events: Sequence[StoredEvent]
    ) -> set[str]:
        """The events whose history visibility (in the state after each, as for clients)
        shows them to no user of `origin`, and those past their room's retention cutoff
        (expired content goes to no one); outliers have no state here and are shown."""
        unexpired = {e.event_id for e in await drop_expired(conn, self.engine, events)}
        hidden = {e.event_id for e in events if e.event_id not in unexpired}
        by_group: defaultdict[int, list[str]] = defaultdict(list)
        for event in events:
            if event.state_group is not None:
                by_group[event.state_group].append(event.event_id)
        for group, event_ids in by_group.items():
            history = await state_store.get_state_for_keys(conn, group, [_HISTORY_VISIBILITY])
            pdus = await self.engine.get_pdus(conn, list(history.values()))
            value = next(iter(pdus.values()), {}).get("content", {}).get("history_visibility")
            shown_by = _SHOWN_TO.get(value) if isinstance(value, str) else None
            if shown_by is None:
                continue  # shared, world_readable (and anything unknown: shared, as clients)
            members = await state_store.get_state(conn, group, ["m.room.member"])
            own = [i for (_, user), i in members.items() if user.partition(":")[2] == origin]
            memberships = {
                p.get("content", {}).get("membership")
                for p in (await self.engine.get_pdus(conn, own)).values()
            }
            if not memberships & shown_by:
                hidden.update(event_ids)
        return hidden

    async def _state_and_chain(
        self, origin: str, room_id: str, event_id: str
    ) -> tuple[RoomVersion, list[StoredEvent], list[StoredEvent]]:
        """The room's version, the state events in force before the event (by type and state
        key) and their auth chain."""
        version = await self._admit(room_id, origin)

        async def read(conn: asyncpg.Connection) -> tuple[list[StoredEvent], list[StoredEvent]]:
            stored = (await _require(conn, room_id, [event_id]))[0]
            if stored.state_group is None:
                raise not_found(f"This server does not know the state at {event_id}")
            ids = await state_before_event(conn, stored)
            state = await _load_all(conn, [ids[k] for k in sorted(ids)])
            ids_of_state = [e.event_id for e in state]
            return state, await auth_chain_events(conn, room_id, version, ids_of_state)

        state, chain = await self._read(read)
        return version, state, chain


async def _require(
    conn: asyncpg.Connection, room_id: str | None, event_ids: Sequence[str]
) -> list[StoredEvent]:
    """The events, all servable (and of `room_id`, when given); 404 otherwise."""
    found = await events_store.get_events(conn, event_ids)
    for event_id in event_ids:
        stored = found.get(event_id)
        if stored is None or stored.rejected or room_id not in (None, stored.room_id):
            where = f" in room {room_id}" if room_id is not None else ""
            raise not_found(f"Unknown event {event_id}{where}")
    return [found[i] for i in event_ids]


async def _of_room(
    conn: asyncpg.Connection, room_id: str, event_ids: Sequence[str]
) -> list[str]:
    """The servable events of the room among `event_ids`: where a walk through the DAG may
    start. The others (unknown, rejected, of another room) are left out, as Synapse does,
    rather than refused: the answer holds nothing reached from them."""
    found = await events_store.get_events(conn, event_ids)
    return [
        i for i in dict.fromkeys(event_ids)
        if i in found and not found[i].rejected and found[i].room_id == room_id
    ]


async def _load_all(conn: asyncpg.Connection, event_ids: Sequence[str]) -> list[StoredEvent]:
    """The servable events among `event_ids`, in that order."""
    found = await events_store.get_events(conn, event_ids)
    return [found[i] for i in event_ids if i in found and not found[i].rejected]


async def auth_chain_events(
    conn: asyncpg.Connection, room_id: str, version: RoomVersion, event_ids: Iterable[str]
) -> list[StoredEvent]:
    """The auth chain of the events, oldest first. From room version 12 on, the create event
    is no auth event but is implied by the room ID: it belongs to every chain."""
    ids = set(event_ids)
    chain = await event_graph.get_auth_chain_ids(conn, ids)
    if version.room_id_from_create_event:
        create_id = create_event_id(room_id)
        if ids - {create_id}:
            chain.add(create_id)
    events = await _load_all(conn, list(chain))
    return sorted(events, key=lambda e: (e.depth, e.event_id))


async def redact_erased(
    conn: asyncpg.Connection, engine: RoomView, version: RoomVersion, pdus: dict[str, Pdu]
) -> dict[str, Pdu]:
    """The PDUs by event ID, those of erased senders redacted (for answers that do not go
    through `RoomReads`, such as a join's state and auth chain)."""
    erased = await engine.erased(conn, {p["sender"] for p in pdus.values()})
    if not erased:
        return pdus
    return {
        i: redact_event(p, version) if p["sender"] in erased else p for i, p in pdus.items()
    }
