"""Which of a room's events have expired under its retention policy (MSC1763), as of now.

Every reader asks this one place (through `RoomView.expired_before`), so an expired event is
hidden everywhere at once, before the retention sweep has purged it: the client reads (through
the visibility filter) and what federation serves. The policy is read from the room's current
`m.room.retention` through the current state cache; `protocol.retention` holds the rules.
"""

from __future__ import annotations

import json

import asyncpg

from homeserver.config import RetentionConfig
from homeserver.protocol.retention import RETENTION_EVENT_TYPE, RetentionLimits, max_lifetime
from homeserver.services.clock import Clock
from homeserver.services.rooms.current_state import CurrentStateCache, StateQuery

_RETENTION_QUERY = StateQuery(keys=frozenset({(RETENTION_EVENT_TYPE, "")}))


def retention_limits(config: RetentionConfig) -> RetentionLimits | None:
    """The server's limits; None when retention is off (nothing ever expires)."""
    if not config.enabled:
        return None
    return RetentionLimits(
        config.default_max_lifetime_ms, config.allowed_lifetime_min_ms,
        config.allowed_lifetime_max_ms,
    )


class RetentionPolicy:
    def __init__(
        self, limits: RetentionLimits | None, clock: Clock, current_state: CurrentStateCache
    ) -> None:
        self.limits = limits
        self.clock = clock
        self.current_state = current_state

    async def lifetime(self, conn: asyncpg.Connection, room_id: str) -> int | None:
        """How long (ms) the room's events are kept; None: forever."""
        if self.limits is None:
            return None
        found = (await self.current_state.get(conn, {room_id: _RETENTION_QUERY}))[room_id]
        content = json.loads(found[0].json).get("content") if found else None
        return max_lifetime(content if isinstance(content, dict) else None, self.limits)

    async def expired_before(self, conn: asyncpg.Connection, room_id: str) -> int | None:
        """The cutoff (ms): the room's non-state events sent before it have expired; None
        when none ever expire."""
        lifetime = await self.lifetime(conn, room_id)
        return None if lifetime is None else self.clock.now_ms() - lifetime
