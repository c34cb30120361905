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
from collections import OrderedDict, defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import asyncpg

from homeserver import metrics
from homeserver.errors import (
    MatrixError,
    bad_json,
    forbidden,
    not_found,
    room_full_error,
    too_large,
)
from homeserver.protocol import auth_rules, events, hashing
from homeserver.protocol.canonical_json import check_canonical_json, encode_canonical_json
from homeserver.protocol.errors import (
    AuthError,
    CanonicalJSONError,
    EventTooLargeError,
    InvalidEventError,
)
from homeserver.protocol.room_versions import RoomVersion, get_room_version
from homeserver.services.notifier import Notifier
from storage import events as events_store
from storage import rooms as rooms_store
from storage import search as search_store
from storage import state as state_store
from storage.database import Database
from storage.streams import Slot, StreamIdGenerator

log = logging.getLogger(__name__)

StateKey = tuple[str, str]
_CREATE = ("m.room.create", "")
_CREATE_ATTEMPTS = 5
_SEATED = ("join", "invite")


@dataclass(frozen=True, slots=True)
class ClientTxn:
    """A client's idempotency key: the same (user, device, txn_id) for the same request
    (`scope`, e.g. "send/<room>/<type>") yields the same event."""

    user_id: str
    device_id: str
    txn_id: str
    scope: str


@dataclass(frozen=True, slots=True)
class PersistedEvent:
    event_id: str
    pdu: dict[str, Any]
    stream_ordering: int


class EventCache:
    """A bounded LRU of parsed PDUs by event ID; events are immutable, so it never goes stale."""

    def __init__(self, size: int = 50_000) -> None:
        self._items: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._size = size

    def get(self, event_id: str) -> dict[str, Any] | None:
        pdu = self._items.get(event_id)
        if pdu is not None:
            self._items.move_to_end(event_id)
        return pdu

    def put(self, event_id: str, pdu: dict[str, Any]) -> None:
        self._items[event_id] = pdu
        self._items.move_to_end(event_id)
        if len(self._items) > self._size:
            self._items.popitem(last=False)


class EventObserver(Protocol):
    """Told of every persisted event inside the transaction that stores it, so that what it
    writes (push notifications) commits with the event; it must not act outside the database,
    since a retried transaction calls it again."""

    async def on_event(
        self, conn: asyncpg.Connection, room_id: str, event_id: str, pdu: dict[str, Any],
        stream_ordering: int,
    ) -> None: ...


class RoomEngine:
    def __init__(
        self, db: Database, *, server_name: str, signing_key: Any, max_members: int,
        notifier: Notifier, stream: StreamIdGenerator, clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.server_name = server_name
        self.signing_key = signing_key
        self.max_members = max_members
        self.notifier = notifier
        self.stream = stream
        self.clock = clock
        self.cache = EventCache()
        self._room_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._versions: dict[str, RoomVersion] = {}
        self._joined: dict[str, set[str]] = {}
        # Bumped after every committed membership change of a room, so a cache fill that
        # raced with one is not stored (it may have read the members before the change).
        self._member_epochs: defaultdict[str, int] = defaultdict(int)
        # (position, users) wake-ups waiting for `stream.current` to reach their position.
        self._pending_wakes: list[tuple[int, set[str]]] = []
        self.observers: list[EventObserver] = []  # plugged in by app.py

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
        """Parsed PDUs for the IDs this server holds, through the cache."""
        found: dict[str, dict[str, Any]] = {}
        missing = []
        for event_id in event_ids:
            pdu = self.cache.get(event_id)
            if pdu is None:
                missing.append(event_id)
            else:
                found[event_id] = pdu
        if missing:
            for event_id, stored in (await events_store.get_events(conn, missing)).items():
                pdu = json.loads(stored.json)
                self.cache.put(event_id, pdu)
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
                persisted = await self._write(
                    room_id, "create_room",
                    partial(self._persist_create, room_id, room_version, pdu, is_public),
                )
            except asyncpg.UniqueViolationError:
                continue
            assert isinstance(persisted, PersistedEvent)
            self._versions[room_id] = room_version
            self._joined.setdefault(room_id, set())
            self._after_persist(room_id, persisted)
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
        return await self._store(conn, room_id, room_version, pdu, None, slot)

    async def _write(
        self, room_id: str, name: str,
        body: Callable[[asyncpg.Connection, Slot], Awaitable[PersistedEvent | str]],
    ) -> PersistedEvent | str:
        """Run one room write: serialized per room, with a stream slot held past commit."""
        async with self._room_locks[room_id]:
            try:
                with self.stream.allocate() as slot:
                    return await self.db.transaction(lambda conn: body(conn, slot), name=name)
            finally:
                self._flush_wakes()

    async def send(
        self, room_id: str, sender: str, event_type: str, content: dict[str, Any], *,
        state_key: str | None = None, txn: ClientTxn | None = None, redacts: str | None = None,
    ) -> str:
        """Build, authorize and persist a local event; return its event ID.

        Raises MatrixError (403 when the auth rules or the member cap refuse it).
        """
        if event_type == "m.room.create":
            raise forbidden("A room has exactly one m.room.create event, sent when it is created")
        try:
            check_canonical_json(content)
        except CanonicalJSONError as e:
            raise bad_json(f"Event content is not valid canonical JSON: {e}") from None
        if room_id not in self._versions:  # 404 before taking a lock for the room
            await self.db.run(lambda conn: self.room_version(conn, room_id))
        result = await self._write(
            room_id, "send_event",
            lambda conn, slot: self._send_txn(
                conn, room_id, sender, event_type, content, state_key, txn, redacts, slot
            ),
        )
        if isinstance(result, str):
            return result
        self._after_persist(room_id, result)
        return result.event_id

    async def _send_txn(
        self, conn: asyncpg.Connection, room_id: str, sender: str, event_type: str,
        content: dict[str, Any], state_key: str | None, txn: ClientTxn | None,
        redacts: str | None, slot: Slot,
    ) -> PersistedEvent | str:
        if txn is not None:
            existing = await rooms_store.get_client_txn(
                conn, txn.user_id, txn.device_id, txn.txn_id, txn.scope
            )
            if existing is not None:
                return existing
        room_version = await self.room_version(conn, room_id)
        if not await rooms_store.lock_room(conn, room_id):
            raise not_found(f"Unknown room {room_id}")
        await self.joined_members(conn, room_id)  # warm the cache _after_persist wakes from
        extremities = await events_store.get_forward_extremities(conn, room_id)
        if len(extremities) != 1:
            # Only federation can fork a room; state resolution joins that path.
            raise MatrixError(500, "M_UNKNOWN", "Room has a forked DAG; cannot send yet")
        prev_id, prev_depth, prev_group = extremities[0]
        wanted = auth_rules.auth_types_for_event(
            event_type, sender, state_key, content, room_version
        )
        keys = list(dict.fromkeys([*wanted, _CREATE]))
        if state_key is not None:
            keys.append((event_type, state_key))
        current = await state_store.get_current_state_for_keys(conn, room_id, keys)
        auth_ids = [current[k] for k in wanted if k in current]
        replaces = current.get((event_type, state_key)) if state_key is not None else None
        pdu = self._build(
            room_version, room_id, sender, event_type, content, state_key, [prev_id], auth_ids,
            depth=prev_depth + 1, redacts=redacts,
        )
        pdus = await self.get_pdus(conn, list(current.values()))
        state_before = {k: pdus[e] for k, e in current.items()}
        self._check(pdu, room_version, [pdus[e] for e in auth_ids], state_before)
        _refuse_encryption_change(pdu, state_before)
        await self._check_member_cap(conn, room_id, pdu)
        persisted = await self._store(
            conn, room_id, room_version, pdu, prev_group, slot, replaces
        )
        if txn is not None:
            await rooms_store.insert_client_txn(
                conn, txn.user_id, txn.device_id, txn.txn_id, txn.scope, persisted.event_id,
                pdu["origin_server_ts"],
            )
        return persisted

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
            raise _format_error(e) from None
        return pdu

    def _check(
        self, pdu: dict[str, Any], room_version: RoomVersion,
        auth_events: list[dict[str, Any]], state_before: Mapping[StateKey, Mapping[str, Any]],
    ) -> None:
        """Size, format, the auth-events selection, and the auth rules against the state
        before the event (for a local event on a linear DAG its auth events are a subset of
        that state, so this one check also covers "auth against its auth events")."""
        try:
            auth_rules.check_event_format(pdu, room_version)
        except InvalidEventError as e:
            raise _format_error(e) from None
        try:
            auth_rules.check_auth_events_selection(pdu, auth_events, room_version)
            auth_rules.check_auth_rules(pdu, state_before, room_version)
        except AuthError as e:
            metrics.EVENTS_REFUSED.labels("auth").inc()
            raise forbidden(str(e)) from None

    async def _check_member_cap(
        self, conn: asyncpg.Connection, room_id: str, pdu: Mapping[str, Any]
    ) -> None:
        """Refuse a join or invite that would seat more than max_members users."""
        if pdu["type"] != "m.room.member" or pdu["content"].get("membership") not in _SEATED:
            return
        current = await state_store.get_membership(conn, room_id, pdu["state_key"])
        if current is not None and current["membership"] in _SEATED:
            return
        seated = await state_store.count_members(conn, room_id, _SEATED)
        if seated >= self.max_members:
            metrics.EVENTS_REFUSED.labels("room_full").inc()
            raise room_full_error(self.max_members)

    async def _store(
        self, conn: asyncpg.Connection, room_id: str, room_version: RoomVersion,
        pdu: dict[str, Any], prev_group: int | None, slot: Slot,
        replaces_state: str | None = None,
    ) -> PersistedEvent:
        event_id = hashing.compute_event_id(pdu, room_version)
        state_key = pdu.get("state_key")
        key = (pdu["type"], state_key) if state_key is not None else None
        group = prev_group
        if key is not None:
            group = await state_store.insert_state_group(conn, room_id, prev_group, {key: event_id})
        position = slot.position
        await events_store.insert_event(
            conn, event_id=event_id, room_id=room_id, stream_ordering=position,
            depth=pdu["depth"], type=pdu["type"], state_key=state_key, sender=pdu["sender"],
            origin_server_ts=pdu["origin_server_ts"],
            json=encode_canonical_json(pdu).decode(), state_group=group,
            replaces_state=replaces_state,
        )
        await events_store.insert_edges(
            conn, event_id, pdu["prev_events"], pdu["auth_events"]
        )
        await search_store.index_event(conn, event_id, room_id, position, pdu)
        await events_store.replace_forward_extremities(
            conn, room_id, pdu["prev_events"], event_id
        )
        if key is not None:
            await state_store.upsert_current_state(conn, room_id, key, event_id)
            if pdu["type"] == "m.room.member":
                await state_store.upsert_membership(
                    conn, room_id, key[1], pdu["content"]["membership"], event_id, position,
                )
        redacts = pdu["content"].get("redacts", pdu.get("redacts"))
        if pdu["type"] == "m.room.redaction" and state_key is None and isinstance(redacts, str):
            # A redaction applies only within its own room.
            target = (await events_store.get_events(conn, [redacts])).get(redacts)
            if target is None or target.room_id == room_id:
                await events_store.insert_redaction(conn, event_id, redacts)
        for observer in self.observers:
            await observer.on_event(conn, room_id, event_id, pdu, position)
        return PersistedEvent(event_id, pdu, position)

    def _after_persist(self, room_id: str, persisted: PersistedEvent) -> None:
        """After commit and after the position is released: cache, metrics, wake-ups."""
        pdu = persisted.pdu
        self.cache.put(persisted.event_id, pdu)
        metrics.EVENTS_PERSISTED.labels(pdu["type"]).inc()
        to_wake = set(self._joined.get(room_id, ()))
        if pdu["type"] == "m.room.member":
            target = pdu["state_key"]
            to_wake.add(target)
            self._member_epochs[room_id] += 1
            members = self._joined.get(room_id)
            if members is not None:
                if pdu["content"].get("membership") == "join":
                    members.add(target)
                else:
                    members.discard(target)
        self._pending_wakes.append((persisted.stream_ordering, to_wake))
        self._flush_wakes()

    def _flush_wakes(self) -> None:
        """Wake the users of every committed event readers can now see. An event that
        committed while a lower position was still in flight waits here until that one
        finishes; waking its users earlier would let their /sync read past nothing."""
        current = self.stream.current
        ready = [users for position, users in self._pending_wakes if position <= current]
        if ready:
            self._pending_wakes = [w for w in self._pending_wakes if w[0] > current]
            for users in ready:
                self.notifier.notify_users(users)


def _format_error(e: InvalidEventError) -> MatrixError:
    """A malformed event is the client's fault: 413 when too large, else 400."""
    if isinstance(e, EventTooLargeError):
        metrics.EVENTS_REFUSED.labels("too_large").inc()
        return too_large(f"Event too large: {e}")
    metrics.EVENTS_REFUSED.labels("format").inc()
    return bad_json(f"Invalid event: {e}")


def _refuse_encryption_change(
    pdu: Mapping[str, Any], state_before: Mapping[StateKey, Mapping[str, Any]]
) -> None:
    """Server policy on top of the auth rules: once a room is encrypted it stays so, with the
    same settings, since a changed m.room.encryption could downgrade every member's messages."""
    if pdu["type"] != "m.room.encryption" or pdu.get("state_key") != "":
        return
    current = state_before.get(("m.room.encryption", ""))
    if current is not None and current["content"] != pdu["content"]:
        raise forbidden("Encryption cannot be switched off or changed once enabled")
