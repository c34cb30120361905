"""The room cluster's memory: parsed events, room versions, joined members, users'
memberships, the newest events and current state entries of each room, kept current by the
writers (`writes`) and read by everyone else through `RoomView`.

Theory of operation. Every cache learns of an event only after its transaction committed
(`learn`, called by `RoomWrites.after_persist`), so a reader never sees what may yet roll back;
the one exception is `staged`: the PDUs a write in progress has stored, which reads inside that
same transaction (push rules reading display names) must find. Membership caches are filled
under an epoch that every committed membership change moves, so a fill that raced with a
change is not kept.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg

from homeserver import metrics
from homeserver.errors import not_found
from homeserver.protocol.redaction import redact_event
from homeserver.protocol.retention import RetentionLimits
from homeserver.protocol.room_versions import RoomVersion, get_room_version
from homeserver.services.clock import SYSTEM_CLOCK, Clock
from homeserver.services.event_cache import EventCache
from homeserver.services.fill_cache import FillCache
from homeserver.services.rooms.current_state import CurrentStateCache
from homeserver.services.rooms.recent import RecentEvents
from homeserver.services.rooms.retention import RetentionPolicy
from homeserver.services.rooms.view import Membership
from storage import erasure as erasure_store
from storage import events as events_store
from storage import rooms as rooms_store
from storage import state as state_store

if TYPE_CHECKING:
    from homeserver.services.rooms.writes import PersistedEvent

_MEMBERSHIP_CACHE_USERS = 100_000
_TXN_ID_CACHE_EVENTS = 100_000
TxnKey = tuple[str, str, str]  # user, device, event
NO_TXN = ""  # cached: the device sent the event without a transaction ID (or did not send it)


class RoomCache:
    """The one `RoomView`, and what the writers tell it."""

    def __init__(
        self, *, server_name: str, recent: RecentEvents, event_cache_max_bytes: int,
        retention: RetentionLimits | None = None, clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.server_name = server_name
        self._local_suffix = ":" + server_name
        # The counters of persisted events, bound once: [local, remote] by event type.
        self._persisted = [
            {t: metrics.EVENTS_PERSISTED.child(t, origin) for t in metrics.EVENT_TYPES}
            for origin in metrics.EVENT_ORIGINS
        ]
        self.events = EventCache(max_bytes=event_cache_max_bytes)
        self.recent = recent
        self.current_state = CurrentStateCache()
        self.retention = RetentionPolicy(retention, clock, self.current_state)
        self._versions: dict[str, RoomVersion] = {}
        self._joined: dict[str, set[str]] = {}
        # Bumped after every committed membership change of a room, so a cache fill that
        # raced with one is not stored (it may have read the members before the change).
        self._member_epochs: defaultdict[str, int] = defaultdict(int)
        # user -> room -> their membership.
        self._memberships: FillCache[str, dict[str, Membership]] = FillCache(
            "memberships", _MEMBERSHIP_CACHE_USERS
        )
        # (user, device, event) -> the transaction ID the device sent the event with. Written
        # with the event and never changed: any process may keep it.
        self._txn_ids: FillCache[TxnKey, str] = FillCache("txn_ids", _TXN_ID_CACHE_EVENTS)
        # room -> the PDUs its write in progress has stored but not committed.
        self.staged: dict[str, dict[str, dict[str, Any]]] = {}
        self.on_memberships_changed: list[Callable[[str], None]] = []  # replication
        self.on_event_redacted: list[Callable[[str], None]] = []  # replication
        self.on_events_purged: list[Callable[[list[str]], None]] = []  # replication
        # Erased local users, read whole on first use (there are few, and every read of events
        # asks); None until then, and again after any erasure or reactivation, which also
        # moves the epoch so that a read that raced with one is not kept.
        self._erased: frozenset[str] | None = None
        self._erased_epoch = 0
        self.on_erased_changed: list[Callable[[str], None]] = []  # replication
        # Told a room ID after state resolution rewrote memberships of it (appservices' interest).
        self.on_members_resolved: list[Callable[[str], None]] = []

    # ---- RoomView ---------------------------------------------------------------------------

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
            pdu = self.events.get(event_id)
            if pdu is None:
                pdu = next((s[event_id] for s in self.staged.values() if event_id in s), None)
            if pdu is None:
                missing.append(event_id)
            else:
                found[event_id] = pdu
        if missing:
            generation = self.events.generation
            for event_id, stored in (await events_store.get_events(conn, missing)).items():
                pdu = json.loads(stored.json)
                if stored.redacted_by is not None:
                    # Rows are censored when their redaction is stored; this catches the rows
                    # of databases written before that was done.
                    pdu = redact_event(pdu, await self.room_version(conn, stored.room_id))
                if self.events.generation == generation:
                    self.events.put(event_id, pdu, len(stored.json))
                found[event_id] = pdu
        return found

    async def txn_ids(
        self, conn: asyncpg.Connection, user_id: str, device_id: str, event_ids: list[str]
    ) -> dict[str, str]:
        """event -> the transaction ID the user's device sent it with, for those it did."""
        async def load(wanted: Sequence[TxnKey]) -> dict[TxnKey, str]:
            txns = await rooms_store.get_txn_ids_for_events(
                conn, user_id, device_id, [e for _, _, e in wanted]
            )
            return {k: txns.get(k[2], NO_TXN) for k in wanted}

        keys = [(user_id, device_id, e) for e in event_ids]
        found = await self._txn_ids.get_many(keys, load)
        return {k[2]: txn for k, txn in found.items() if txn != NO_TXN}

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
        return user_id.endswith(self._local_suffix)

    async def erased(self, conn: asyncpg.Connection, user_ids: Iterable[str]) -> set[str]:
        erased = self._erased
        if erased is None:
            epoch = self._erased_epoch
            erased = frozenset(await erasure_store.get_erased(conn))
            if self._erased_epoch == epoch:
                self._erased = erased
        return {u for u in user_ids if u in erased} if erased else set()

    async def expired_before(self, conn: asyncpg.Connection, room_id: str) -> int | None:
        return await self.retention.expired_before(conn, room_id)

    # ---- what the writers and replication tell it -------------------------------------------

    def knows_room(self, room_id: str) -> bool:
        """Whether the room's version is cached (a send to it needs no lookup to queue)."""
        return room_id in self._versions

    def remember_room(self, room_id: str, room_version: RoomVersion) -> None:
        """A room this server just learnt of (creating it, or joining it over federation)."""
        self._versions[room_id] = room_version

    def room_created(self, room_id: str, room_version: RoomVersion) -> None:
        """A room this server just created: known, with no members yet."""
        self._versions[room_id] = room_version
        self._joined.setdefault(room_id, set())

    def memberships_resolved(self, room_id: str, user_ids: set[str]) -> None:
        """State resolution changed these users' memberships of the room in ways no single
        event says: drop what is cached about them and the room's members."""
        self._joined.pop(room_id, None)
        self._member_epochs[room_id] += 1
        self.current_state.invalidate(room_id)
        for user_id in user_ids:
            self.memberships_changed(user_id)
        for hook in self.on_members_resolved:
            hook(room_id)

    def forget_room(self, room_id: str, event_ids: Sequence[str]) -> None:
        """A room purged from the database (an admin's room deletion): drop everything held
        of it and every cached membership, so that it reads as a room never seen."""
        self._versions.pop(room_id, None)
        self._joined.pop(room_id, None)
        self._member_epochs[room_id] += 1
        self.current_state.invalidate(room_id)
        self.recent.forget(room_id, 0)
        for event_id in event_ids:
            self.events.discard(event_id)
        self.forget_memberships()

    def forget_memberships(self) -> None:
        """Drop every cached membership (changes by another process may have been missed)."""
        self._memberships.clear()

    def erased_changed(self, user_id: str) -> None:
        """The user was erased or reactivated (committed): read the erased users again, here
        and in the workers."""
        self.forget_erased()
        for hook in self.on_erased_changed:
            hook(user_id)

    def forget_erased(self) -> None:
        """Drop the erased users held (changes by another process may have been missed)."""
        self._erased = None
        self._erased_epoch += 1

    def memberships_changed(self, user_id: str) -> None:
        """Drop the user's cached memberships (a member event, or a room forgotten)."""
        self._memberships.invalidate(user_id)
        for hook in self.on_memberships_changed:
            hook(user_id)

    def purged(self, room_id: str, event_ids: list[str]) -> None:
        """Events a history purge deleted (committed): forget their PDUs and drop them from
        the room's newest events, here and in the workers."""
        for event_id in event_ids:
            self.events.discard(event_id)
        self.recent.discard(room_id, set(event_ids))
        for hook in self.on_events_purged:
            hook(event_ids)

    def censored(self, room_id: str, rows: Mapping[str, str]) -> None:
        """Rows (event ID → redacted JSON) rewritten outside a room write (the redaction
        sweep): forget their PDUs here and in the workers, hold the new JSON as newest."""
        self.current_state.invalidate(room_id)
        for event_id, json_text in rows.items():
            self.events.discard(event_id)
            self.recent.rewrite(room_id, event_id, json_text)
            for hook in self.on_event_redacted:
                hook(event_id)

    def learn(self, event: PersistedEvent) -> set[str]:
        """A committed event, in its room's stream order; returns the users to wake for it
        (the room's members before it, and a member event's target)."""
        stored, pdu, redacted = event.stored, event.pdu, event.redacted
        room_id = stored.room_id
        self.events.put(stored.event_id, pdu, len(stored.json))
        self.recent.append(stored, event.previous_position)
        if "state_key" in pdu or redacted is not None:
            self.current_state.invalidate(room_id)
        if redacted is not None:
            self.events.discard(redacted)
            self.recent.redact(room_id, redacted, stored.event_id)
            for hook in self.on_event_redacted:
                hook(redacted)
        origin = 0 if stored.sender.endswith(self._local_suffix) else 1
        persisted = self._persisted[origin].get(pdu["type"]) or self._persisted[origin]["other"]
        persisted.value += 1
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
        return to_wake
