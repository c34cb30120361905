"""What the rest of the server reads of rooms: the small surface services depend on instead of
the room cluster's writers (`RoomCache` is the one implementation)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import asyncpg

from homeserver.protocol.room_versions import RoomVersion

if TYPE_CHECKING:
    from homeserver.services.rooms.current_state import CurrentStateCache
    from homeserver.services.rooms.recent import RecentEvents


@dataclass(frozen=True, slots=True)
class Membership:
    """A user's current membership of one room (a row of `room_memberships`)."""

    room_id: str
    membership: str
    event_id: str
    stream_ordering: int
    forgotten: bool  # left, then forgotten: no longer shown in /sync


class RoomView(Protocol):
    """Rooms as readers see them, through the caches the writers keep current."""

    # The newest events of each room, for /sync's timelines.
    recent: RecentEvents
    # Current state entries and member counts of rooms, for sliding sync's lists.
    current_state: CurrentStateCache

    async def room_version(self, conn: asyncpg.Connection, room_id: str) -> RoomVersion:
        """The room's version; MatrixError 404 for a room this server does not know."""
        ...

    async def get_pdus(
        self, conn: asyncpg.Connection, event_ids: list[str]
    ) -> dict[str, dict[str, Any]]:
        """Parsed PDUs for the IDs this server holds; redacted events in their redacted form."""
        ...

    async def txn_ids(
        self, conn: asyncpg.Connection, user_id: str, device_id: str, event_ids: list[str]
    ) -> dict[str, str]:
        """event -> the transaction ID the user's device sent it with, for those it did."""
        ...

    async def joined_members(self, conn: asyncpg.Connection, room_id: str) -> set[str]:
        """The room's joined users (empty for an unknown room). Do not modify."""
        ...

    async def memberships(self, conn: asyncpg.Connection, user_id: str) -> dict[str, Membership]:
        """room -> the user's membership, for every room they have one in."""
        ...

    def is_local(self, user_id: str) -> bool:
        """Whether the user belongs to this server."""
        ...

    async def erased(self, conn: asyncpg.Connection, user_ids: Iterable[str]) -> set[str]:
        """Which of the users are erased (deactivated with `erase`): their events are served
        redacted to readers who were not joined when they were sent."""
        ...

    async def expired_before(self, conn: asyncpg.Connection, room_id: str) -> int | None:
        """The room's retention cutoff (ms since the epoch): its non-state events sent before
        it have expired and are served to no one; None when they never expire."""
        ...
