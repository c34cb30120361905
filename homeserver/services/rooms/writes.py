"""One room write, local or remote: the per-room lock and stream slot around one transaction,
staging an accepted event's rows, the observers told of it, and what follows the commit.

Writers of one room are serialized twice: an asyncio lock per room within this process, and
`SELECT … FOR UPDATE` on the room row across processes sharing the database. An event's rows
are staged in `EventWrites` and written together at the end of the transaction; after the
commit, `after_persist` tells the caches (`RoomCache.learn`) and only then wakes readers.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import asyncpg

from homeserver.protocol.canonical_json import encode_canonical_json
from homeserver.protocol.event_refs import referenced_event_ids
from homeserver.protocol.media_refs import local_media_ids
from homeserver.protocol.redaction import redact_event
from homeserver.protocol.room_versions import RoomVersion
from homeserver.protocol.state_keys import CREATE, POWER_LEVELS, StateKey
from homeserver.services.censoring import forget_in_appservice_transactions
from homeserver.services.notifier import Notifier
from homeserver.services.rooms.cache import RoomCache
from homeserver.services.rooms.policy import may_redact, redacts_of
from homeserver.services.stream_wakes import StreamWakes
from storage import appservice_queue as appservice_store
from storage import events as events_store
from storage import media_release, push_deliveries
from storage import outbox as outbox_store
from storage import push as push_store
from storage import rooms as rooms_store
from storage import search as search_store
from storage import state as state_store
from storage.database import Database
from storage.events import NewEvent, StoredEvent
from storage.push import NotificationGroup
from storage.push_deliveries import PusherKey
from storage.rooms import ClientTxnKey
from storage.streams import Slot, StreamIdGenerator

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PersistedEvent:
    event_id: str
    pdu: dict[str, Any]
    stream_ordering: int
    stored: StoredEvent
    previous_position: int | None  # of the room's event before it (None: the first)
    # This server sends it to the other servers in the room: its own events, and the joins,
    # leaves and knocks that reached the room through this server (send_join and friends).
    federate: bool = True
    # For a redaction that took effect on an event this server holds: that event's ID.
    redacted: str | None = None


@dataclass(slots=True)
class EventWrites:
    """The append-only rows of one write transaction, written together at its end with one
    statement per table: a batch of forty messages costs the queries of one."""

    events: list[NewEvent] = field(default_factory=list)
    notifications: list[NotificationGroup] = field(default_factory=list)
    client_txns: list[tuple[ClientTxnKey, str]] = field(default_factory=list)
    searchable: list[tuple[str, str, int, dict[str, Any]]] = field(default_factory=list)
    outbound: list[tuple[str, str]] = field(default_factory=list)  # (destination, event_id)
    appservice: list[tuple[str, str]] = field(default_factory=list)  # (appservice id, event_id)
    # (event_id, room_id, redacted JSON) of events a redaction took effect on; written after
    # the inserts, since the event may be of this same batch.
    censored: list[tuple[str, str, str]] = field(default_factory=list)
    # Local media IDs the censored events referred to (the media sweep's candidates).
    released_media: set[str] = field(default_factory=set)
    # The notifications to queue pushes for, each listing only the notified users who may
    # hold an http pusher (none staged: no statement).
    pushes_due: list[NotificationGroup] = field(default_factory=list)
    # The http pushers that `flush` queued a push for, once per queued row.
    pushes: list[PusherKey] = field(default_factory=list)

    async def flush(
        self, conn: asyncpg.Connection, room_id: str, extremity_replaced: Sequence[str] | None
    ) -> None:
        """`extremity_replaced`: the forward extremities the last event replaces (None: the
        caller maintains the extremities itself, as the path for remote events does)."""
        if not self.events:
            return
        await events_store.insert_events(conn, self.events)
        await events_store.censor_events(conn, self.censored)
        await search_store.delete_events(conn, [c[0] for c in self.censored])
        await forget_in_appservice_transactions(conn, [c[0] for c in self.censored])
        await media_release.add_media_candidates(
            conn, sorted(self.released_media), self.events[-1].origin_server_ts
        )
        await outbox_store.insert_pdus(conn, self.outbound)
        await appservice_store.insert_events(conn, self.appservice)
        await search_store.index_events(conn, self.searchable)
        if extremity_replaced is not None:
            await events_store.replace_forward_extremities(
                conn, room_id, extremity_replaced, self.events[-1].stored.event_id
            )
        await push_store.insert_notifications(conn, self.notifications)
        self.pushes = await push_deliveries.queue_notified(conn, self.pushes_due)
        await rooms_store.insert_client_txns(
            conn, self.client_txns, self.events[-1].origin_server_ts
        )


@dataclass(slots=True)
class RoomTxn:
    """What the events staged by one write transaction share: its connection, the room and
    its version, the rows staged so far, and the room's joined members as of the event being
    staged (push rules notify them; a local batch updates them as its member events go)."""

    conn: asyncpg.Connection
    room_id: str
    room_version: RoomVersion
    writes: EventWrites
    members: set[str]


class EventObserver(Protocol):
    """Told of every event about to be persisted, inside the transaction that stores it, with
    the room state and joined members before it; what it stages in `writes` (push
    notifications) commits with the event. It must not act outside the database, since a
    retried transaction calls it again; `committed` follows once the writes are durable."""

    async def on_event(
        self, conn: asyncpg.Connection, event: PersistedEvent,
        state_before: Mapping[StateKey, Mapping[str, Any]], members: set[str],
        writes: EventWrites,
    ) -> None: ...

    def committed(self, writes: EventWrites) -> None: ...


def stored_event(
    room_id: str, event_id: str, pdu: Mapping[str, Any], state_group: int | None, *,
    position: int | None = None, replaces_state: str | None = None, rejected: bool = False,
) -> StoredEvent:
    """The events row of a PDU that passed the format check (`position` None: it has no
    place in the timeline)."""
    return StoredEvent(
        event_id=event_id, room_id=room_id, stream_ordering=position, depth=pdu["depth"],
        type=pdu["type"], state_key=pdu.get("state_key"), sender=pdu["sender"],
        # Lenient: the format check already held the event to its version's rules, and
        # rooms v1-v5 admit floats and big integers.
        json=encode_canonical_json(pdu, strict=False).decode(), state_group=state_group,
        rejected=rejected,
        replaces_state=replaces_state, redacted_by=None,
    )


def unplaced_row(
    room_id: str, event_id: str, pdu: Mapping[str, Any], state_group: int | None, *,
    reason: str | None = None, soft_failed: bool = False, outlier: bool = False,
    replaces_state: str | None = None,
) -> NewEvent:
    """The row of an event with no place in the timeline: rejected, soft-failed, historical
    or an outlier."""
    stored = stored_event(
        room_id, event_id, pdu, state_group, replaces_state=replaces_state,
        rejected=reason is not None,
    )
    return NewEvent(
        stored, int(pdu["origin_server_ts"]), referenced_event_ids(pdu.get("prev_events")),
        referenced_event_ids(pdu.get("auth_events")), rejection_reason=reason,
        soft_failed=soft_failed, outlier=outlier,
    )


class RoomWrites:
    def __init__(
        self, db: Database, cache: RoomCache, *, stream: StreamIdGenerator, notifier: Notifier
    ) -> None:
        self.db = db
        self.cache = cache
        self.stream = stream
        self._room_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._wakes = StreamWakes(notifier, stream, flush_on_release=False)
        self.observers: list[EventObserver] = []  # plugged in by app.py

    async def write(
        self, room_id: str, name: str, body: Callable[[asyncpg.Connection, Slot], Awaitable[T]],
    ) -> T:
        """Run one room write: serialized per room, with stream positions held past commit.
        After a success the caller must call `after_persist`, which wakes readers once the
        caches know the new events."""
        async with self._room_locks[room_id]:
            try:
                with self.stream.allocate() as slot:
                    return await self.db.transaction(lambda conn: body(conn, slot), name=name)
            except BaseException:
                self._wakes.flush()  # positions released: other rooms' wake-ups may be due
                # The commit may have happened (a connection lost at the wrong moment): the
                # room's state may have changed without anything learnt of it.
                self.cache.current_state.invalidate(room_id)
                raise

    async def exclusive(
        self, room_id: str, name: str, body: Callable[[asyncpg.Connection], Awaitable[T]],
    ) -> T:
        """Run one transaction that changes a room's stored history without writing events
        (a history purge): serialized with the room's writers in this process, holding no
        stream position. `body` takes the room row's lock (`storage.rooms.lock_room`) to be
        serialized with writers of other processes too."""
        async with self._room_locks[room_id]:
            return await self.db.transaction(body, name=name)

    async def stage(
        self, txn: RoomTxn, pdu: dict[str, Any], stored: StoredEvent,
        state_before: Mapping[StateKey, Mapping[str, Any]], *, previous_position: int | None,
        federate: bool = True,
    ) -> PersistedEvent:
        """Stage the rows of an accepted timeline event, local or remote, in `txn.writes`,
        and tell the observers (push rules, the federation outbox)."""
        writes, room_id, event_id = txn.writes, txn.room_id, stored.event_id
        position = stored.stream_ordering
        assert position is not None
        writes.events.append(NewEvent(
            stored, pdu["origin_server_ts"], referenced_event_ids(pdu["prev_events"]),
            referenced_event_ids(pdu["auth_events"]),
        ))
        if pdu["type"] in search_store.SEARCHABLE:
            writes.searchable.append((event_id, room_id, position, pdu))
        redacted = None
        if pdu["type"] == "m.room.redaction":
            redacted = await self._stage_redaction(txn, pdu, event_id, state_before)
        persisted = PersistedEvent(
            event_id, pdu, position, stored, previous_position, federate=federate,
            redacted=redacted,
        )
        staged = self.cache.staged.get(room_id)
        if staged is not None:
            staged[event_id] = pdu
        for observer in self.observers:
            await observer.on_event(txn.conn, persisted, state_before, txn.members, writes)
        return persisted

    async def _stage_redaction(
        self, txn: RoomTxn, pdu: dict[str, Any], event_id: str,
        state_before: Mapping[StateKey, Mapping[str, Any]],
    ) -> str | None:
        """Record a redaction that takes effect and stage its target's censored row; the
        target's ID when it was censored now."""
        conn, room_id, version = txn.conn, txn.room_id, txn.room_version
        redacts = redacts_of(pdu, version)
        if redacts is None:
            return None
        target = (await events_store.get_events(conn, [redacts])).get(redacts)
        states = [state_before]
        if not self.cache.is_local(pdu["sender"]):
            states.append(await self._current_power_state(conn, room_id))
        if not may_redact(pdu, target, room_id, states, version):
            return None
        await events_store.insert_redaction(conn, event_id, redacts)
        return self._censor(txn, redacts, target)

    async def _current_power_state(
        self, conn: asyncpg.Connection, room_id: str
    ) -> dict[StateKey, dict[str, Any]]:
        """The room's current create and power levels events (what decides a redact power)."""
        current = await state_store.get_current_state_for_keys(
            conn, room_id, [CREATE, POWER_LEVELS]
        )
        pdus = await self.cache.get_pdus(conn, list(current.values()))
        return {k: pdus[e] for k, e in current.items() if e in pdus}

    def _censor(self, txn: RoomTxn, target_id: str, target: StoredEvent | None) -> str | None:
        """Stage the redacted form of `target_id` for its row, if this server holds it in this
        room (stored, or staged by this same write); return its ID then. One not yet held is
        censored when it arrives (`services.censoring`)."""
        room_id = txn.room_id
        staged = self.cache.staged.get(room_id, {})
        if target_id in staged:
            original = staged[target_id]
        elif target is not None and target.room_id == room_id:
            original = json.loads(target.json)
        else:
            return None
        pruned = redact_event(original, txn.room_version)
        if target_id in staged:
            staged[target_id] = pruned
        txn.writes.censored.append(
            (target_id, room_id, encode_canonical_json(pruned, strict=False).decode())
        )
        content = original.get("content")
        if isinstance(content, dict):
            txn.writes.released_media |= local_media_ids(content, self.cache.server_name)
        return target_id

    def after_persist(self, *persisted: PersistedEvent) -> None:
        """After commit and after the positions are released: every cache learns of all the
        events first, then readers are woken (a reader, or a worker told of the new positions,
        must not see them before the caches do)."""
        self._wakes.add_many([(e.stream_ordering, self.cache.learn(e)) for e in persisted])
