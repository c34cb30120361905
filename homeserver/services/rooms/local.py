"""This server's own events entering a room: built here, checked, and persisted in batches.

Theory of operation. A local send is *built* here (prev_events = the room's forward
extremity, auth_events selected from current state, depth, content hash, signature) and then
takes the steps every event takes (`checks`): format and size → the auth rules against the
state before it (for a local event on a linear DAG its auth events are a subset of that
state, so this one check also covers "auth against its auth events") → the room's member
limit → one transaction that stores the event, its edges, its state snapshot, current state,
membership and the stream position (`writes`) → wake the notifier.

Concurrent sends to one room queue for the room's writer task, which persists all that
queued up while the previous batch was being written in one transaction and one commit.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import asyncpg

from homeserver import metrics
from homeserver.errors import MatrixError, bad_json, forbidden, not_found, room_full_error
from homeserver.logs import outside_requests
from homeserver.protocol import auth_rules, events, hashing
from homeserver.protocol.canonical_json import check_canonical_json
from homeserver.protocol.errors import AuthError, CanonicalJSONError, InvalidEventError
from homeserver.protocol.event_refs import EventReference, event_reference
from homeserver.protocol.room_versions import RoomVersion
from homeserver.protocol.state_keys import StateKey
from homeserver.services.clock import Clock
from homeserver.services.rooms import checks
from homeserver.services.rooms.cache import RoomCache
from homeserver.services.rooms.policy import (
    format_error,
    refuse_encryption_change,
    repeats_state,
)
from homeserver.services.rooms.state import state_group_for
from homeserver.services.rooms.writes import (
    EventWrites,
    PersistedEvent,
    RoomTxn,
    RoomWrites,
    stored_event,
)
from storage import events as events_store
from storage import rooms as rooms_store
from storage import state as state_store
from storage.database import DataError
from storage.rooms import ClientTxnKey
from storage.streams import Slot

log = logging.getLogger(__name__)

_CREATE_ATTEMPTS = 5
# The most queued sends one transaction persists.
_MAX_BATCH = 64
# The most forward extremities one local event merges (the spec allows 20 prev_events).
_MAX_PREV_EVENTS = 20


@dataclass(slots=True)
class EventDraft:
    """What a local event says before it is built onto the room's heads."""

    sender: str
    event_type: str
    content: dict[str, Any]
    state_key: str | None
    redacts: str | None


@dataclass(slots=True)
class _SendRequest(EventDraft):
    txn: ClientTxnKey | None
    done: asyncio.Future[PersistedEvent | str]
    # Sent only while the sender's membership is join (checked under the room's lock): a
    # server-made update of a member event must never re-join someone who just left.
    if_joined: bool = False
    # The event's origin_server_ts when not now (an application service's `?ts=`).
    origin_server_ts: int | None = None


class LocalEvents:
    def __init__(
        self, cache: RoomCache, writes: RoomWrites, *, signing_key: Any, max_members: int,
        clock: Clock,
    ) -> None:
        self.cache = cache
        self.writes = writes
        self.db = writes.db
        self.server_name = cache.server_name
        self.signing_key = signing_key
        self.max_members = max_members
        self.clock = clock
        # Sends waiting for their room's writer task, and the running writer tasks.
        self._queues: defaultdict[str, list[_SendRequest]] = defaultdict(list)
        self._writers: dict[str, asyncio.Task[None]] = {}

    async def create_room(
        self, creator: str, room_version: RoomVersion, content: dict[str, Any], *, is_public: bool
    ) -> str:
        """Send the m.room.create event of a new room and return the room ID."""
        draft = EventDraft(creator, "m.room.create", content, "", None)
        for attempt in range(_CREATE_ATTEMPTS):
            # A v12 room ID is the create event's hash: two identical requests in the same
            # millisecond would collide, so a retry moves the timestamp on.
            ts = self.clock.now_ms() + attempt
            if room_version.room_id_from_create_event:
                pdu = self._build(room_version, None, draft, [], [], depth=1, origin_server_ts=ts)
                room_id: str = hashing.compute_room_id(pdu, room_version)
            else:
                # Pre-v12 room IDs are opaque: any unique localpart on this server will do.
                room_id = f"!{secrets.token_urlsafe(18)}:{self.server_name}"
                pdu = self._build(
                    room_version, room_id, draft, [], [], depth=1, origin_server_ts=ts
                )
            try:
                persisted = await self.writes.write(
                    room_id, "create_room",
                    partial(self._persist_create, room_id, room_version, pdu, is_public),
                )
            except asyncpg.UniqueViolationError:
                continue
            self.cache.room_created(room_id, room_version)
            self.writes.after_persist(persisted)
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
        txn = RoomTxn(conn, room_id, room_version, EventWrites(), set())
        persisted = await self._store(
            txn, pdu, {}, prev_group=None, position=slot.position, previous_position=None
        )
        await txn.writes.flush(conn, room_id, [])
        return persisted

    async def send(
        self, room_id: str, sender: str, event_type: str, content: dict[str, Any], *,
        state_key: str | None = None, txn: ClientTxnKey | None = None,
        redacts: str | None = None, if_joined: bool = False,
        origin_server_ts: int | None = None,
    ) -> str:
        """Build, authorize and persist a local event; return its event ID. `if_joined`:
        403 unless the sender is joined to the room when the event is built.

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
        if not self.cache.knows_room(room_id):  # 404 before queueing for the room
            await self.db.run(lambda conn: self.cache.room_version(conn, room_id))
        done: asyncio.Future[PersistedEvent | str] = asyncio.get_running_loop().create_future()
        request = _SendRequest(
            sender, event_type, content, state_key, redacts, txn, done, if_joined,
            origin_server_ts,
        )
        self._queues[room_id].append(request)
        if room_id not in self._writers:
            self._writers[room_id] = asyncio.create_task(
                self._drain(room_id), context=outside_requests()
            )
        # Shielded: a client that hangs up does not cancel the batch its event is in.
        result = await asyncio.shield(done)
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
            # cancelled at shutdown: nobody is left waiting forever
            _fail(batch, MatrixError(503, "M_UNKNOWN", "The server is shutting down"))

    async def _send_batch(self, room_id: str, batch: list[_SendRequest]) -> None:
        metrics.SEND_BATCH_SIZE.observe(len(batch))
        try:
            outcomes, writes = await self.writes.write(
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
            self.cache.recent.forget(room_id, self.writes.stream.last_allocated)
            _fail(batch, e)
            return
        finally:
            self.cache.staged.pop(room_id, None)
        for observer in self.writes.observers:
            observer.committed(writes)
        persisted = [o for o in outcomes if isinstance(o, PersistedEvent)]
        self.writes.after_persist(*persisted)
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
        self.cache.staged[room_id] = {}
        room_version = await self.cache.room_version(conn, room_id)
        if not await rooms_store.lock_room(conn, room_id):
            raise not_found(f"Unknown room {room_id}")
        # The members as of each event of the batch (push rules notify them), from the cache
        # after_persist updates and wakes from.
        txn = RoomTxn(
            conn, room_id, room_version, EventWrites(),
            set(await self.cache.joined_members(conn, room_id)),
        )
        replaced, head = await self._head(conn, room_id, room_version)
        prev_events = replaced
        wanted = [
            auth_rules.auth_types_for_event(
                r.event_type, r.sender, r.state_key, r.content, room_version
            ) for r in batch
        ]
        keys = checks.keys_read(
            wanted, ((r.event_type, r.state_key) for r in batch if r.state_key is not None)
        )
        current = await state_store.get_current_state_for_keys(conn, room_id, keys)
        pdus = await self.cache.get_pdus(conn, list(current.values()))
        state = {k: pdus[e] for k, e in current.items()}
        earlier = await rooms_store.get_client_txns(
            conn, [r.txn for r in batch if r.txn is not None]
        )
        writes, members = txn.writes, txn.members
        outcomes: list[PersistedEvent | str | MatrixError] = []
        for request, auth_types in zip(batch, wanted, strict=True):
            if request.txn is not None and request.txn in earlier:
                outcomes.append(earlier[request.txn])
                continue
            key = None if request.state_key is None else (request.event_type, request.state_key)
            if request.if_joined and _membership(state, request.sender) != "join":
                outcomes.append(forbidden(f"{request.sender} is not in the room"))
                continue
            if key is not None and repeats_state(state.get(key), request.sender, request.content):
                outcomes.append(current[key])
                continue
            try:
                pdu = self._build(
                    room_version, room_id, request,
                    await self.references(conn, room_version, prev_events),
                    await self.references(
                        conn, room_version, [current[k] for k in auth_types if k in current]
                    ),
                    depth=head.depth + 1, origin_server_ts=request.origin_server_ts,
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
                txn, pdu, state, prev_group=head.state_group,
                position=slot.nth(len(writes.events)), previous_position=head.stream_ordering,
                replaces_state=current.get(key) if key is not None else None,
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
        group = await state_group_for(
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
            room_version = await self.cache.room_version(conn, room_id)
            heads = sorted(
                await events_store.get_forward_extremities(conn, room_id),
                key=lambda e: (-e.depth, e.event_id),
            )[:_MAX_PREV_EVENTS]
            if not heads:
                raise not_found(f"This server has no events of room {room_id}")
            auth_types = auth_rules.auth_types_for_event(
                event_type, sender, state_key, content, room_version
            )
            keys = checks.keys_read([auth_types], [])
            current = await state_store.get_current_state_for_keys(conn, room_id, keys)
            pdus = await self.cache.get_pdus(conn, list(current.values()))
            state = {k: pdus[e] for k, e in current.items() if e in pdus}
            pdu: dict[str, Any] = {
                "type": event_type, "content": content, "room_id": room_id, "sender": sender,
                "origin_server_ts": self.clock.now_ms(), "depth": heads[0].depth + 1,
                "prev_events": await self.references(
                    conn, room_version, [h.event_id for h in heads]
                ),
                "auth_events": await self.references(
                    conn, room_version, [current[k] for k in auth_types if k in current]
                ),
            }
            if state_key is not None:
                pdu["state_key"] = state_key
            # Unsigned by nature: the authorising server of a restricted join signs later.
            refusal = checks.auth_refusal(
                pdu, state, room_version, is_signed_by=lambda _event, _server: True
            )
            if refusal is not None:
                raise forbidden(refusal)
            await self._check_member_cap(conn, room_id, pdu, state)
            return room_version, pdu

        return await self.db.run(build)

    async def references(
        self, conn: asyncpg.Connection, room_version: RoomVersion, event_ids: list[str]
    ) -> list[EventReference]:
        """The ``prev_events``/``auth_events`` entries naming ``event_ids``: the IDs
        themselves, or in rooms v1-v2 each paired with its event's reference hash."""
        if not room_version.event_id_in_pdu:
            return list(event_ids)
        pdus = await self.cache.get_pdus(conn, event_ids)
        return [event_reference(i, pdus[i], room_version) for i in event_ids]

    def new_event_id(self, room_version: RoomVersion) -> str | None:
        """The ID a room v1-v2 event built here carries (``$opaque:our server``, as Synapse
        makes them); None from v3 on, where the ID is the event's reference hash."""
        if not room_version.event_id_in_pdu:
            return None
        return f"${secrets.token_urlsafe(18)}:{self.server_name}"

    def _build(
        self, room_version: RoomVersion, room_id: str | None, draft: EventDraft,
        prev: Sequence[EventReference], auth: Sequence[EventReference], *, depth: int,
        origin_server_ts: int | None = None,
    ) -> dict[str, Any]:
        try:
            _, pdu = events.build_event(
                room_version=room_version, room_id=room_id, sender=draft.sender,
                event_type=draft.event_type, content=draft.content, state_key=draft.state_key,
                prev_events=prev, auth_events=auth, depth=depth,
                origin_server_ts=(
                    self.clock.now_ms() if origin_server_ts is None else origin_server_ts
                ),
                server_name=self.server_name, signing_key=self.signing_key,
                redacts=draft.redacts, event_id=self.new_event_id(room_version),
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
        checks.check_format(pdu, room_version)
        try:
            auth_rules.check_auth_events_selection(pdu, auth_events, room_version)
        except AuthError as e:
            refusal: str | None = str(e)
        else:
            refusal = checks.auth_refusal(pdu, state_before, room_version, self._signed_here)
        if refusal is not None:
            metrics.EVENTS_REFUSED.labels("auth").inc()
            raise forbidden(refusal)

    def _signed_here(self, pdu: Mapping[str, Any], server: str) -> bool:
        """The signatures of an event this server just built: its own, and no other. (A
        restricted join names one of our users only when `RoomsService` chose them.)"""
        return server == self.server_name

    async def _check_member_cap(
        self, conn: asyncpg.Connection, room_id: str, pdu: Mapping[str, Any],
        state: Mapping[StateKey, Mapping[str, Any]],
    ) -> None:
        """Refuse a join or invite that would seat more users than the room's limit."""
        limit = await checks.exceeded_member_limit(conn, room_id, pdu, state, self.max_members)
        if limit is not None:
            metrics.EVENTS_REFUSED.labels("room_full").inc()
            raise room_full_error(limit)

    async def _store(
        self, txn: RoomTxn, pdu: dict[str, Any], state_before: Mapping[StateKey, Mapping[str, Any]],
        *, prev_group: int | None, position: int, previous_position: int | None,
        replaces_state: str | None = None,
    ) -> PersistedEvent:
        """Stage a local event on top of the current state, which it then changes; state
        changes are written at once, so that the next event of a batch (a member cap count, a
        state group) reads them."""
        conn, room_id = txn.conn, txn.room_id
        event_id = hashing.compute_event_id(pdu, txn.room_version)
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
        stored = stored_event(
            room_id, event_id, pdu, group, position=position, replaces_state=replaces_state
        )
        return await self.writes.stage(
            txn, pdu, stored, state_before, previous_position=previous_position
        )


def _fail(batch: list[_SendRequest], error: Exception) -> None:
    for request in batch:
        if not request.done.done():
            request.done.set_exception(error)


def _membership(state: Mapping[StateKey, Mapping[str, Any]], user_id: str) -> str | None:
    """The user's membership in `state` (None: no member event)."""
    member = state.get(("m.room.member", user_id))
    return None if member is None else member.get("content", {}).get("membership")
