"""The room engine: the one path by which any event enters a room's DAG.

Theory of operation. Local sends are *built* here (prev_events = the room's forward extremity,
auth_events selected from current state, depth, content hash, signature) and then take the same
steps every event takes: format and size check → authorization against its auth events →
authorization against the state before it → the room's member cap → one transaction that stores
the event, its edges, its state snapshot, current state, membership and the stream position →
wake the notifier. Remote events (federation) will join at the "format and size check" step.

Writers of one room are serialized twice: an asyncio lock per room within this process, and
`SELECT … FOR UPDATE` on the room row across processes sharing the database.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, TypeVar

import asyncpg

from homeserver import metrics
from homeserver.errors import (
    MatrixError,
    bad_json,
    forbidden,
    not_found,
    room_full_error,
)
from homeserver.protocol import auth_rules, events, hashing
from homeserver.protocol.canonical_json import check_canonical_json, encode_canonical_json
from homeserver.protocol.errors import (
    AuthError,
    CanonicalJSONError,
    InvalidEventError,
)
from homeserver.protocol.redaction import redact_event
from homeserver.protocol.room_versions import RoomVersion, get_room_version
from homeserver.services import room_state
from homeserver.services.event_cache import EventCache
from homeserver.services.event_policy import (
    format_error,
    may_redact,
    redacts_of,
    refuse_encryption_change,
    repeats_state,
)
from homeserver.services.fill_cache import FillCache
from homeserver.services.notifier import Notifier
from homeserver.services.recent_events import RecentEvents
from homeserver.services.stream_wakes import StreamWakes
from storage import events as events_store
from storage import outbox as outbox_store
from storage import push as push_store
from storage import rooms as rooms_store
from storage import search as search_store
from storage import state as state_store
from storage.database import Database, DataError
from storage.events import StoredEvent
from storage.push import NotificationGroup
from storage.rooms import ClientTxnKey
from storage.streams import Slot, StreamIdGenerator

log = logging.getLogger(__name__)

StateKey = tuple[str, str]
_CREATE = ("m.room.create", "")
_CREATE_ATTEMPTS = 5
_SEATED = ("join", "invite")
# The room's own member limit, a state event of this project's namespace written at creation so
# that every server in the room can see it (the auth rules know of no limit).
MEMBER_LIMIT_TYPE = "org.moot.room.member_limit"
_MEMBER_LIMIT = (MEMBER_LIMIT_TYPE, "")
_MEMBERSHIP_CACHE_USERS = 100_000
# The most queued sends one transaction persists.
_MAX_BATCH = 64
# The most forward extremities one local event merges (the spec allows 20 prev_events).
_MAX_PREV_EVENTS = 20
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


@dataclass(frozen=True, slots=True)
class Membership:
    """A user's current membership of one room (a row of `room_memberships`)."""

    room_id: str
    membership: str
    event_id: str
    stream_ordering: int
    forgotten: bool  # left, then forgotten: no longer shown in /sync


@dataclass(slots=True)
class EventWrites:
    """The append-only rows of one write transaction, written together at its end with one
    statement per table: a batch of forty messages costs the queries of one."""

    events: list[events_store.NewEvent] = field(default_factory=list)
    notifications: list[NotificationGroup] = field(default_factory=list)
    client_txns: list[tuple[ClientTxnKey, str]] = field(default_factory=list)
    searchable: list[tuple[str, str, int, dict[str, Any]]] = field(default_factory=list)
    outbound: list[tuple[str, str]] = field(default_factory=list)  # (destination, event_id)
    # (event_id, room_id, redacted JSON) of events a redaction took effect on; written after
    # the inserts, since the event may be of this same batch.
    censored: list[tuple[str, str, str]] = field(default_factory=list)

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
        await outbox_store.insert_pdus(conn, self.outbound)
        await search_store.index_events(conn, self.searchable)
        if extremity_replaced is not None:
            await events_store.replace_forward_extremities(
                conn, room_id, extremity_replaced, self.events[-1].stored.event_id
            )
        await push_store.insert_notifications(conn, self.notifications)
        await rooms_store.insert_client_txns(
            conn, self.client_txns, self.events[-1].origin_server_ts
        )


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


@dataclass(slots=True)
class _SendRequest:
    sender: str
    event_type: str
    content: dict[str, Any]
    state_key: str | None
    txn: ClientTxnKey | None
    redacts: str | None
    done: asyncio.Future[PersistedEvent | str]


class RoomEngine:
    def __init__(
        self, db: Database, *, server_name: str, signing_key: Any, max_members: int,
        notifier: Notifier, stream: StreamIdGenerator, clock: Callable[[], float] = time.time,
        event_cache_max_bytes: int, recent_events_max_bytes: int,
    ) -> None:
        self.db = db
        self.server_name = server_name
        self.signing_key = signing_key
        self.max_members = max_members
        self.notifier = notifier
        self.stream = stream
        self.clock = clock
        self.cache = EventCache(max_bytes=event_cache_max_bytes)
        self._room_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._versions: dict[str, RoomVersion] = {}
        self._joined: dict[str, set[str]] = {}
        # Bumped after every committed membership change of a room, so a cache fill that
        # raced with one is not stored (it may have read the members before the change).
        self._member_epochs: defaultdict[str, int] = defaultdict(int)
        # user -> room -> their membership.
        self._memberships: FillCache[str, dict[str, Membership]] = FillCache(
            _MEMBERSHIP_CACHE_USERS
        )
        self.recent = RecentEvents(stream.current, max_bytes=recent_events_max_bytes)
        # Sends waiting for their room's writer task, and the running writer tasks.
        self._queues: defaultdict[str, list[_SendRequest]] = defaultdict(list)
        self._writers: dict[str, asyncio.Task[None]] = {}
        # room -> the PDUs its write in progress has stored but not committed, so that what
        # reads state inside that transaction (push rules reading display names) finds them.
        self._staged: dict[str, dict[str, dict[str, Any]]] = {}
        self._wakes = StreamWakes(notifier, stream, flush_on_release=False)
        self.observers: list[EventObserver] = []  # plugged in by app.py
        self.on_memberships_changed: list[Callable[[str], None]] = []  # replication
        self.on_event_redacted: list[Callable[[str], None]] = []  # replication

    # ---- reads shared by the services -------------------------------------------------------

    async def room_version(self, conn: asyncpg.Connection, room_id: str) -> RoomVersion:
        version = self._versions.get(room_id)
        if version is None:
            identifier = await rooms_store.get_room_version(conn, room_id)
            if identifier is None:
                raise not_found(f"Unknown room {room_id}")
            version = self._versions[room_id] = get_room_version(identifier)
        return version

    async def get_pdus(
        self, conn: asyncpg.Connection, event_ids: list[str]
    ) -> dict[str, dict[str, Any]]:
        """Parsed PDUs for the IDs this server holds, through the cache; redacted events in
        their redacted form."""
        found: dict[str, dict[str, Any]] = {}
        missing = []
        for event_id in event_ids:
            pdu = self.cache.get(event_id)
            if pdu is None:
                pdu = next((s[event_id] for s in self._staged.values() if event_id in s), None)
            if pdu is None:
                missing.append(event_id)
            else:
                found[event_id] = pdu
        if missing:
            generation = self.cache.generation
            for event_id, stored in (await events_store.get_events(conn, missing)).items():
                pdu = json.loads(stored.json)
                if stored.redacted_by is not None:
                    # Rows are censored when their redaction is stored; this catches the rows
                    # of databases written before that was done.
                    pdu = redact_event(pdu, await self.room_version(conn, stored.room_id))
                if self.cache.generation == generation:
                    self.cache.put(event_id, pdu, len(stored.json))
                found[event_id] = pdu
        return found

    async def joined_members(self, conn: asyncpg.Connection, room_id: str) -> set[str]:
        members = self._joined.get(room_id)
        if members is None:
            if await rooms_store.get_room_version(conn, room_id) is None:
                return set()  # an unknown room has no members; cache only real rooms
            epoch = self._member_epochs[room_id]
            rows = await state_store.get_members(conn, room_id, ["join"])
            members = {r["user_id"] for r in rows}
            if self._member_epochs[room_id] == epoch:
                self._joined.setdefault(room_id, members)
        return members

    async def memberships(self, conn: asyncpg.Connection, user_id: str) -> dict[str, Membership]:
        """room -> the user's membership, for every room they have one in."""
        async def load() -> dict[str, Membership]:
            rows = await state_store.get_memberships_of(conn, user_id)
            return {r["room_id"]: Membership(*r) for r in rows}

        return await self._memberships.get_or_load(user_id, load)

    def is_local(self, user_id: str) -> bool:
        return user_id.endswith(":" + self.server_name)

    def remember_room(self, room_id: str, room_version: RoomVersion) -> None:
        """A room this server just learnt of (joining it over federation)."""
        self._versions[room_id] = room_version

    def memberships_resolved(self, room_id: str, user_ids: set[str]) -> None:
        """State resolution changed these users' memberships of the room in ways no single
        event says: drop what is cached about them and the room's members."""
        self._joined.pop(room_id, None)
        self._member_epochs[room_id] += 1
        for user_id in user_ids:
            self.memberships_changed(user_id)

    def forget_memberships(self) -> None:
        """Drop every cached membership (changes by another process may have been missed)."""
        self._memberships.clear()

    def memberships_changed(self, user_id: str) -> None:
        """Drop the user's cached memberships (a member event, or a room forgotten)."""
        self._memberships.invalidate(user_id)
        for hook in self.on_memberships_changed:
            hook(user_id)

    # ---- the write path ---------------------------------------------------------------------

    async def create_room(
        self, creator: str, room_version: RoomVersion, content: dict[str, Any], *, is_public: bool
    ) -> str:
        """Send the m.room.create event of a new room and return the room ID."""
        for attempt in range(_CREATE_ATTEMPTS):
            # A v12 room ID is the create event's hash: two identical requests in the same
            # millisecond would collide, so a retry moves the timestamp on.
            ts = int(self.clock() * 1000) + attempt
            if room_version.room_id_from_create_event:
                pdu = self._build(
                    room_version, None, creator, "m.room.create", content, "", [], [], depth=1,
                    origin_server_ts=ts,
                )
                room_id: str = hashing.compute_room_id(pdu, room_version)
            else:
                # Pre-v12 room IDs are opaque: any unique localpart on this server will do.
                room_id = f"!{secrets.token_urlsafe(18)}:{self.server_name}"
                pdu = self._build(
                    room_version, room_id, creator, "m.room.create", content, "", [], [],
                    depth=1, origin_server_ts=ts,
                )
            try:
                persisted = await self.write(
                    room_id, "create_room",
                    partial(self._persist_create, room_id, room_version, pdu, is_public),
                )
            except asyncpg.UniqueViolationError:
                continue
            self._versions[room_id] = room_version
            self._joined.setdefault(room_id, set())
            self.after_persist(room_id, persisted)
            return room_id
        raise MatrixError(503, "M_UNKNOWN", "Could not allocate a room ID; try again")

    async def _persist_create(
        self, room_id: str, room_version: RoomVersion, pdu: dict[str, Any], is_public: bool,
        conn: asyncpg.Connection, slot: Slot,
    ) -> PersistedEvent:
        await rooms_store.insert_room(
            conn, room_id, room_version.identifier, pdu["sender"], pdu["origin_server_ts"],
            is_public,
        )
        self._check(pdu, room_version, [], {})
        writes = EventWrites()
        persisted = await self._store(
            conn, room_id, room_version, pdu, None, slot.position, {}, writes, members=set()
        )
        await writes.flush(conn, room_id, [])
        return persisted

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
                raise

    async def send(
        self, room_id: str, sender: str, event_type: str, content: dict[str, Any], *,
        state_key: str | None = None, txn: ClientTxnKey | None = None,
        redacts: str | None = None,
    ) -> str:
        """Build, authorize and persist a local event; return its event ID.

        Concurrent sends to one room are persisted together, in arrival order, by the room's
        writer task (`_drain`): one transaction and one commit for all that queued up while the
        previous batch was being written. Raises MatrixError (403 when the auth rules or the
        member cap refuse it).
        """
        if event_type == "m.room.create":
            raise forbidden("A room has exactly one m.room.create event, sent when it is created")
        try:
            check_canonical_json(content)
        except CanonicalJSONError as e:
            raise bad_json(f"Event content is not valid canonical JSON: {e}") from None
        if room_id not in self._versions:  # 404 before queueing for the room
            await self.db.run(lambda conn: self.room_version(conn, room_id))
        request = _SendRequest(
            sender, event_type, content, state_key, txn, redacts,
            asyncio.get_running_loop().create_future(),
        )
        self._queues[room_id].append(request)
        if room_id not in self._writers:
            self._writers[room_id] = asyncio.create_task(self._drain(room_id))
        # Shielded: a client that hangs up does not cancel the batch its event is in.
        result = await asyncio.shield(request.done)
        return result if isinstance(result, str) else result.event_id

    async def _drain(self, room_id: str) -> None:
        """The room's writer: persist queued sends in batches until the queue is empty."""
        queue = self._queues[room_id]
        batch: list[_SendRequest] = []
        try:
            while queue:
                batch = queue[:_MAX_BATCH]
                del queue[:_MAX_BATCH]
                try:
                    await self._send_batch(room_id, batch)
                except Exception as e:  # a bug after the commit: keep the room's queue moving
                    log.exception("sending a batch of %d to %s failed", len(batch), room_id)
                    _fail(batch, e)
        finally:
            del self._writers[room_id]
            if not queue:
                del self._queues[room_id]
            for request in batch:  # cancelled at shutdown: nobody is left waiting forever
                if not request.done.done():
                    request.done.set_exception(
                        MatrixError(503, "M_UNKNOWN", "The server is shutting down")
                    )

    async def _send_batch(self, room_id: str, batch: list[_SendRequest]) -> None:
        metrics.SEND_BATCH_SIZE.observe(len(batch))
        try:
            outcomes, writes = await self.write(
                room_id, "send_events",
                lambda conn, slot: self._send_batch_txn(conn, room_id, batch, slot),
            )
        except (DataError, asyncpg.IntegrityConstraintViolationError, MatrixError) as e:
            if len(batch) > 1 and not isinstance(e, MatrixError):
                # One request's data broke the whole transaction: each on its own, so that
                # it fails alone.
                log.warning("a batch for %s failed (%s); sending one by one", room_id, e)
                for request in batch:
                    await self._send_batch(room_id, [request])
                return
            _fail(batch, e)
            return
        except Exception as e:
            # The commit may or may not have happened (a lost connection): what is held in
            # memory for the room can no longer be trusted to be complete.
            self.recent.forget(room_id, self.stream.last_allocated)
            _fail(batch, e)
            return
        finally:
            self._staged.pop(room_id, None)
        for observer in self.observers:
            observer.committed(writes)
        persisted = [o for o in outcomes if isinstance(o, PersistedEvent)]
        self.after_persist(room_id, *persisted)
        for request, outcome in zip(batch, outcomes, strict=True):
            if request.done.done():
                continue
            if isinstance(outcome, MatrixError):
                request.done.set_exception(outcome)
            else:
                request.done.set_result(outcome)

    async def _send_batch_txn(
        self, conn: asyncpg.Connection, room_id: str, batch: list[_SendRequest], slot: Slot,
    ) -> tuple[list[PersistedEvent | str | MatrixError], EventWrites]:
        """Build, check and store each request in turn, each on top of the one before."""
        slot.restart()
        self._staged[room_id] = {}
        room_version = await self.room_version(conn, room_id)
        if not await rooms_store.lock_room(conn, room_id):
            raise not_found(f"Unknown room {room_id}")
        # The members as of each event of the batch (push rules notify them), from the cache
        # after_persist updates and wakes from.
        members = set(await self.joined_members(conn, room_id))
        replaced, head = await self._head(conn, room_id, room_version)
        prev_events = replaced
        wanted = [
            auth_rules.auth_types_for_event(
                r.event_type, r.sender, r.state_key, r.content, room_version
            ) for r in batch
        ]
        keys = list(dict.fromkeys([
            _CREATE, _MEMBER_LIMIT, *(k for w in wanted for k in w),
            *((r.event_type, r.state_key) for r in batch if r.state_key is not None),
        ]))
        current = await state_store.get_current_state_for_keys(conn, room_id, keys)
        pdus = await self.get_pdus(conn, list(current.values()))
        state = {k: pdus[e] for k, e in current.items()}
        earlier = await rooms_store.get_client_txns(
            conn, [r.txn for r in batch if r.txn is not None]
        )
        writes = EventWrites()
        outcomes: list[PersistedEvent | str | MatrixError] = []
        for request, auth_types in zip(batch, wanted, strict=True):
            if request.txn is not None and request.txn in earlier:
                outcomes.append(earlier[request.txn])
                continue
            key = None if request.state_key is None else (request.event_type, request.state_key)
            if key is not None and repeats_state(state.get(key), request.sender, request.content):
                outcomes.append(current[key])
                continue
            try:
                pdu = self._build(
                    room_version, room_id, request.sender, request.event_type, request.content,
                    request.state_key, prev_events,
                    [current[k] for k in auth_types if k in current],
                    depth=head.depth + 1, redacts=request.redacts,
                )
                self._check(
                    pdu, room_version, [state[k] for k in auth_types if k in state], state
                )
                refuse_encryption_change(pdu, state)
                await self._check_member_cap(conn, room_id, pdu, state)
            except MatrixError as e:
                outcomes.append(e)
                continue
            persisted = await self._store(
                conn, room_id, room_version, pdu, head.state_group, slot.nth(len(writes.events)),
                state, writes, members=members,
                replaces_state=current.get(key) if key is not None else None,
                previous_position=head.stream_ordering,
            )
            if request.event_type == "m.room.member" and request.state_key is not None:
                if pdu["content"].get("membership") == "join":
                    members.add(request.state_key)
                else:
                    members.discard(request.state_key)
            if request.txn is not None:
                writes.client_txns.append((request.txn, persisted.event_id))
                earlier[request.txn] = persisted.event_id  # a retry queued in the same batch
            if key is not None:
                current[key] = persisted.event_id
                state[key] = pdu
            stored = persisted.stored
            head = events_store.Extremity(
                stored.event_id, stored.depth, stored.state_group, stored.stream_ordering
            )
            prev_events = [stored.event_id]
            outcomes.append(persisted)
        await writes.flush(conn, room_id, replaced)
        return outcomes, writes

    async def _head(
        self, conn: asyncpg.Connection, room_id: str, room_version: RoomVersion
    ) -> tuple[list[str], events_store.Extremity]:
        """What a new local event builds on: the forward extremities it will replace (its
        prev_events) and one stand-in extremity with their depth, newest position and a state
        group of the room's current state. Where the DAG forked, the current state is the
        resolution of the heads' states (kept so by the path for remote events), so the merge
        needs no resolution here: one event referencing up to twenty heads closes the fork."""
        extremities = await events_store.get_forward_extremities(conn, room_id)
        if not extremities:
            raise not_found(f"This server has no events of room {room_id}")
        if len(extremities) == 1:
            return [extremities[0].event_id], extremities[0]
        heads = sorted(extremities, key=lambda e: (-e.depth, e.event_id))[:_MAX_PREV_EVENTS]
        base = next((h.state_group for h in heads if h.state_group is not None), None)
        base_state = await state_store.get_state(conn, base) if base is not None else {}
        group = await room_state.state_group_for(
            conn, room_id, base, base_state, await state_store.get_current_state(conn, room_id)
        )
        positions = [h.stream_ordering for h in heads if h.stream_ordering is not None]
        return [h.event_id for h in heads], events_store.Extremity(
            heads[0].event_id, heads[0].depth, group, max(positions, default=None)
        )

    async def template(
        self, room_id: str, sender: str, event_type: str, content: dict[str, Any],
        state_key: str | None,
    ) -> tuple[RoomVersion, dict[str, Any]]:
        """An unsigned event on the room's current heads, for another server to sign (the
        make_join, make_leave and make_knock answers). It must pass the auth rules and the
        member cap against the current state, else MatrixError 403."""
        async def build(conn: asyncpg.Connection) -> tuple[RoomVersion, dict[str, Any]]:
            room_version = await self.room_version(conn, room_id)
            heads = sorted(
                await events_store.get_forward_extremities(conn, room_id),
                key=lambda e: (-e.depth, e.event_id),
            )[:_MAX_PREV_EVENTS]
            if not heads:
                raise not_found(f"This server has no events of room {room_id}")
            auth_types = auth_rules.auth_types_for_event(
                event_type, sender, state_key, content, room_version
            )
            keys = list(dict.fromkeys([_CREATE, _MEMBER_LIMIT, *auth_types]))
            current = await state_store.get_current_state_for_keys(conn, room_id, keys)
            pdus = await self.get_pdus(conn, list(current.values()))
            state = {k: pdus[e] for k, e in current.items() if e in pdus}
            pdu: dict[str, Any] = {
                "type": event_type, "content": content, "room_id": room_id, "sender": sender,
                "origin_server_ts": int(self.clock() * 1000), "depth": heads[0].depth + 1,
                "prev_events": [h.event_id for h in heads],
                "auth_events": [current[k] for k in auth_types if k in current],
            }
            if state_key is not None:
                pdu["state_key"] = state_key
            try:
                # Unsigned by nature: the authorising server of a restricted join signs later.
                auth_rules.check_auth_rules(
                    pdu, state, room_version, is_signed_by=lambda _event, _server: True
                )
            except AuthError as e:
                raise forbidden(str(e)) from None
            await self._check_member_cap(conn, room_id, pdu, state)
            return room_version, pdu

        return await self.db.run(build)

    def _build(
        self, room_version: RoomVersion, room_id: str | None, sender: str, event_type: str,
        content: dict[str, Any], state_key: str | None, prev: list[str], auth: list[str], *,
        depth: int, redacts: str | None = None, origin_server_ts: int | None = None,
    ) -> dict[str, Any]:
        try:
            _, pdu = events.build_event(
                room_version=room_version, room_id=room_id, sender=sender,
                event_type=event_type, content=content, state_key=state_key, prev_events=prev,
                auth_events=auth, depth=depth,
                origin_server_ts=origin_server_ts or int(self.clock() * 1000),
                server_name=self.server_name, signing_key=self.signing_key, redacts=redacts,
            )
        except InvalidEventError as e:
            raise format_error(e) from None
        return pdu

    def _check(
        self, pdu: dict[str, Any], room_version: RoomVersion,
        auth_events: list[Mapping[str, Any]], state_before: Mapping[StateKey, Mapping[str, Any]],
    ) -> None:
        """Size, format, the auth-events selection, and the auth rules against the state
        before the event (for a local event on a linear DAG its auth events are a subset of
        that state, so this one check also covers "auth against its auth events")."""
        try:
            auth_rules.check_event_format(pdu, room_version)
        except InvalidEventError as e:
            raise format_error(e) from None
        try:
            auth_rules.check_auth_events_selection(pdu, auth_events, room_version)
            auth_rules.check_auth_rules(
                pdu, state_before, room_version, is_signed_by=self._signed_here
            )
        except AuthError as e:
            metrics.EVENTS_REFUSED.labels("auth").inc()
            raise forbidden(str(e)) from None

    def _signed_here(self, pdu: Mapping[str, Any], server: str) -> bool:
        """The signatures of an event this server just built: its own, and no other. (A
        restricted join names one of our users only when `RoomsService` chose them.)"""
        return server == self.server_name

    def member_limit(self, state: Mapping[StateKey, Mapping[str, Any]]) -> int:
        """The room's effective member limit: the lower of its own limit event and this
        server's `rooms.max_members` (a limit event that is not a positive integer is ignored)."""
        event = state.get(_MEMBER_LIMIT)
        limit = event["content"].get("max_members") if event is not None else None
        if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
            return min(limit, self.max_members)
        return self.max_members

    async def _check_member_cap(
        self, conn: asyncpg.Connection, room_id: str, pdu: Mapping[str, Any],
        state: Mapping[StateKey, Mapping[str, Any]],
    ) -> None:
        """Refuse a join or invite that would seat more users than the room's limit."""
        limit = await self.exceeded_member_limit(conn, room_id, pdu, state)
        if limit is not None:
            metrics.EVENTS_REFUSED.labels("room_full").inc()
            raise room_full_error(limit)

    async def exceeded_member_limit(
        self, conn: asyncpg.Connection, room_id: str, pdu: Mapping[str, Any],
        state: Mapping[StateKey, Mapping[str, Any]],
    ) -> int | None:
        """The room's limit when `pdu` is a join or invite that would seat one user too many
        against the current memberships (None: it takes no seat, or one is free)."""
        if pdu["type"] != "m.room.member" or pdu["content"].get("membership") not in _SEATED:
            return None
        current = await state_store.get_membership(conn, room_id, pdu["state_key"])
        if current is not None and current["membership"] in _SEATED:
            return None
        limit = self.member_limit(state)
        seated = await state_store.count_members(conn, room_id, _SEATED)
        return limit if seated >= limit else None

    async def _store(
        self, conn: asyncpg.Connection, room_id: str, room_version: RoomVersion,
        pdu: dict[str, Any], prev_group: int | None, position: int,
        state_before: Mapping[StateKey, Mapping[str, Any]], writes: EventWrites, *,
        members: set[str], replaces_state: str | None = None,
        previous_position: int | None = None,
    ) -> PersistedEvent:
        """Stage a local event on top of the current state, which it then changes; state
        changes are written at once, so that the next event of a batch (a member cap count, a
        state group) reads them."""
        event_id = hashing.compute_event_id(pdu, room_version)
        state_key = pdu.get("state_key")
        group = prev_group
        if state_key is not None:
            key = (pdu["type"], state_key)
            group = await state_store.insert_state_group(conn, room_id, prev_group, {key: event_id})
            await state_store.upsert_current_state(conn, room_id, key, event_id)
            if pdu["type"] == "m.room.member":
                await state_store.upsert_membership(
                    conn, room_id, key[1], pdu["content"]["membership"], event_id, position,
                )
        return await self.stage(
            conn, room_id, pdu, event_id, group, position, state_before, writes,
            members=members, replaces_state=replaces_state,
            previous_position=previous_position,
        )

    async def stage(
        self, conn: asyncpg.Connection, room_id: str, pdu: dict[str, Any], event_id: str,
        state_group: int | None, position: int,
        state_before: Mapping[StateKey, Mapping[str, Any]], writes: EventWrites, *,
        members: set[str], replaces_state: str | None, previous_position: int | None,
        federate: bool = True,
    ) -> PersistedEvent:
        """Stage the rows of an accepted timeline event, local or remote, in `writes`, and
        tell the observers (push rules, the federation outbox)."""
        stored = StoredEvent(
            event_id=event_id, room_id=room_id, stream_ordering=position, depth=pdu["depth"],
            type=pdu["type"], state_key=pdu.get("state_key"), sender=pdu["sender"],
            json=encode_canonical_json(pdu).decode(), state_group=state_group, rejected=False,
            replaces_state=replaces_state, redacted_by=None,
        )
        writes.events.append(events_store.NewEvent(
            stored, pdu["origin_server_ts"], pdu["prev_events"], pdu["auth_events"]
        ))
        if pdu["type"] in search_store.SEARCHABLE:
            writes.searchable.append((event_id, room_id, position, pdu))
        redacted = None
        if pdu["type"] == "m.room.redaction":
            redacted = await self._stage_redaction(
                conn, room_id, pdu, event_id, state_before, writes
            )
        persisted = PersistedEvent(
            event_id, pdu, position, stored, previous_position, federate=federate,
            redacted=redacted,
        )
        staged = self._staged.get(room_id)
        if staged is not None:
            staged[event_id] = pdu
        for observer in self.observers:
            await observer.on_event(conn, persisted, state_before, members, writes)
        return persisted

    async def _stage_redaction(
        self, conn: asyncpg.Connection, room_id: str, pdu: dict[str, Any], event_id: str,
        state_before: Mapping[StateKey, Mapping[str, Any]], writes: EventWrites,
    ) -> str | None:
        """Record a redaction that takes effect and stage its target's censored row; the
        target's ID when it was censored now."""
        version = self._versions[room_id]
        redacts = redacts_of(pdu, version)
        if redacts is None:
            return None
        target = (await events_store.get_events(conn, [redacts])).get(redacts)
        states = [state_before]
        if not self.is_local(pdu["sender"]):
            states.append(await self._current_power_state(conn, room_id))
        if not may_redact(pdu, target, room_id, states, version):
            return None
        await events_store.insert_redaction(conn, event_id, redacts)
        return self._censor(room_id, redacts, target, writes)

    async def _current_power_state(
        self, conn: asyncpg.Connection, room_id: str
    ) -> dict[StateKey, dict[str, Any]]:
        """The room's current create and power levels events (what decides a redact power)."""
        current = await state_store.get_current_state_for_keys(
            conn, room_id, [_CREATE, ("m.room.power_levels", "")]
        )
        pdus = await self.get_pdus(conn, list(current.values()))
        return {k: pdus[e] for k, e in current.items() if e in pdus}

    def _censor(
        self, room_id: str, target_id: str, target: StoredEvent | None, writes: EventWrites
    ) -> str | None:
        """Stage the redacted form of `target_id` for its row, if this server holds it in this
        room (stored, or staged by this same write); return its ID then. One not yet held is
        censored when it arrives (`services.censoring`)."""
        staged = self._staged.get(room_id, {})
        if target_id in staged:
            original = staged[target_id]
        elif target is not None and target.room_id == room_id:
            original = json.loads(target.json)
        else:
            return None
        pruned = redact_event(original, self._versions[room_id])
        if target_id in staged:
            staged[target_id] = pruned
        writes.censored.append((target_id, room_id, encode_canonical_json(pruned).decode()))
        return target_id

    def after_persist(self, room_id: str, *persisted: PersistedEvent) -> None:
        """After commit and after the positions are released: every cache learns of all the
        events first, then readers are woken (a reader, or a worker told of the new positions,
        must not see them before the caches do)."""
        wakes = []
        for event in persisted:
            pdu = event.pdu
            self.cache.put(event.event_id, pdu, len(event.stored.json))
            self.recent.append(event.stored, event.previous_position)
            if event.redacted is not None:
                self.cache.discard(event.redacted)
                self.recent.redact(room_id, event.redacted, event.event_id)
                for hook in self.on_event_redacted:
                    hook(event.redacted)
            metrics.EVENTS_PERSISTED.labels(pdu["type"]).inc()
            to_wake = set(self._joined.get(room_id, ()))
            if pdu["type"] == "m.room.member":
                target = pdu["state_key"]
                to_wake.add(target)
                self.memberships_changed(target)
                self._member_epochs[room_id] += 1
                members = self._joined.get(room_id)
                if members is not None:
                    if pdu["content"].get("membership") == "join":
                        members.add(target)
                    else:
                        members.discard(target)
            wakes.append((event.stream_ordering, to_wake))
        self._wakes.add_many(wakes)


def _fail(batch: list[_SendRequest], error: Exception) -> None:
    for request in batch:
        if not request.done.done():
            request.done.set_exception(error)
