"""Which application services an event or an ephemeral update concerns
(application-service-api "Registration": an appservice is interested in an event when it
matches any of its namespaces).

An appservice is interested in a room event when its sender is one of its users, when a member
event's target is, when the room ID matches its `rooms` namespaces or a local alias of the
room its `aliases` namespaces, or when one of its users is joined to the room or invited.

Theory of operation. The room engine asks for every event it persists, so the common answer
("nobody") must cost a few dictionary lookups. Registrations never change while the server
runs, so which appservices a user ID matches is memoised for good. What depends on the room
(its ID, its local aliases, its joined and invited members) is cached per room (`FillCache`)
and dropped when it may change: a member event whose target some appservice holds, an alias
created or deleted, memberships rewritten by state resolution. Inside a write transaction a
member event of an interesting user drops the room's entry at once and blocks refills until
that transaction is over, so the events after it in the same batch read the room as it now is
(the engine writes memberships as it stages events) and nothing uncommitted is kept.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import asyncpg

from homeserver.protocol.appservice import (
    Registration,
    is_interested_in_alias,
    is_interested_in_room,
    is_interested_in_user,
)
from homeserver.services.fill_cache import FillCache
from storage import rooms as rooms_store
from storage import state as state_store

_ROOMS_CACHED = 50_000
_USERS_CACHED = 200_000
NOBODY: frozenset[str] = frozenset()
# The memberships that make a room interesting to the appservice holding the member.
_PRESENT = ("join", "invite")


class AppServiceInterest:
    def __init__(self, registrations: Sequence[Registration]) -> None:
        self.registrations = tuple(registrations)
        self._users: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._rooms: FillCache[str, frozenset[str]] = FillCache("appservice_rooms", _ROOMS_CACHED)

    def of_user(self, user_id: str) -> frozenset[str]:
        """The appservices holding a user ID (its sender or a user namespace)."""
        found = self._users.get(user_id)
        if found is None:
            found = frozenset(
                r.id for r in self.registrations if is_interested_in_user(r, user_id)
            )
            self._users[user_id] = found
            if len(self._users) > _USERS_CACHED:
                self._users.popitem(last=False)
        return found

    def changes_room_interest(self, event_type: str, state_key: str | None) -> bool:
        """Whether an event may change which appservices its room interests: a member event
        whose target some appservice holds."""
        return event_type == "m.room.member" and state_key is not None and bool(
            self.of_user(state_key)
        )

    async def of_event(
        self, conn: asyncpg.Connection, room_id: str, pdu: Mapping[str, Any], *,
        room_unsettled: bool,
    ) -> frozenset[str]:
        """The appservices interested in a room event. ``room_unsettled``: the caller's
        transaction changed the room's interesting members and has not committed, so the
        room is read afresh through ``conn`` and nothing read is cached."""
        if not self.registrations:
            return NOBODY
        found = self.of_user(pdu["sender"])
        target = pdu.get("state_key")
        if pdu.get("type") == "m.room.member" and isinstance(target, str):
            found |= self.of_user(target)
        if room_unsettled:
            self._rooms.invalidate(room_id)
            return found | await self._load_room(conn, room_id)
        return found | await self.of_room(conn, room_id)

    async def of_room(self, conn: asyncpg.Connection, room_id: str) -> frozenset[str]:
        """The appservices interested in everything happening in a room (through its ID, its
        aliases or its members)."""
        if not self.registrations:
            return NOBODY
        return await self._rooms.get_or_load(room_id, lambda: self._load_room(conn, room_id))

    def cached_room(self, room_id: str) -> frozenset[str] | None:
        """`of_room` when it is cached (None: it must be loaded)."""
        return self._rooms.peek(room_id) if self.registrations else NOBODY

    async def of_rooms(
        self, conn: asyncpg.Connection, room_ids: Iterable[str]
    ) -> frozenset[str]:
        found: set[str] = set()
        for room_id in room_ids:
            found |= await self.of_room(conn, room_id)
        return frozenset(found)

    def forget_room(self, room_id: str) -> None:
        """The room's aliases or interesting members changed (after the change committed)."""
        self._rooms.invalidate(room_id)

    async def _load_room(self, conn: asyncpg.Connection, room_id: str) -> frozenset[str]:
        found = {r.id for r in self.registrations if is_interested_in_room(r, room_id)}
        if any(r.aliases for r in self.registrations):
            for alias in await rooms_store.get_aliases_for_room(conn, room_id):
                found.update(
                    r.id for r in self.registrations if is_interested_in_alias(r, alias)
                )
        for row in await state_store.get_members(conn, room_id, _PRESENT):
            found |= self.of_user(row["user_id"])
        return frozenset(found)
