"""Sliding sync connections: which `pos` a device may continue from, and what it was sent.

Theory of operation. A position is written once (`storage.sliding_sync`) and never changes,
so any process may hold it in memory by its ID; the cache here is bounded (least recently
used positions go) and a miss reads the database, which is how a position outlives a restart
and reaches another /sync worker. What can change is whether the position's connection still
exists: a request without `pos` replaces the device's connection of that `conn_id`, a device
keeps only its `per_device` newest connections, and a connection unused for `EXPIRY_MS`
expires (as the reference server's do). This process evicts what it replaced or dropped
itself; when other processes serve the same clients (`shared`), a cached position's
connection is also looked up in the database, one indexed read. When it was last used is
written at most once per `TOUCH_MS`, so a busy connection costs no write per request.

Every pos is sealed with its connection's random secret (which stays here): a pos another
server issued (whose IDs may well exist here), or one whose stream token was altered, is
unknown, not someone else's state or a delta from a point the server never stood at.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass

import asyncpg

from homeserver.errors import MatrixError
from homeserver.protocol.sliding_sync import ConnectionState, pos_verifies
from homeserver.services.clock import Clock
from homeserver.services.requester import Requester, device_of
from storage import sliding_sync as store
from storage.database import Database

DEFAULT_CACHED_POSITIONS = 10_000
EXPIRY_MS = 7 * 24 * 3600 * 1000
TOUCH_MS = 3600 * 1000


def unknown_pos() -> MatrixError:
    return MatrixError(400, "M_UNKNOWN_POS", "Unknown or expired position: start over without pos")


@dataclass(frozen=True, slots=True)
class Held:
    """A position as this process holds it."""

    position_id: int
    connection_id: int
    secret: str
    owner: tuple[str, str, str]  # user, device, conn_id
    state: ConnectionState


class Connections:
    def __init__(
        self, db: Database, clock: Clock, *, per_device: int, shared: bool,
        cached_positions: int = DEFAULT_CACHED_POSITIONS,
    ) -> None:
        self.db = db
        self.clock = clock
        self.per_device = per_device
        self.shared = shared
        self._size = cached_positions
        self._positions: OrderedDict[int, Held] = OrderedDict()
        # connection -> when it was last used, as the database has it
        self._last_used: OrderedDict[int, int] = OrderedDict()

    async def load(
        self, requester: Requester, conn_id: str, position_id: int, seal: str,
        stream_token: str,
    ) -> Held:
        """The position the client continues from; M_UNKNOWN_POS unless it is one of this
        device's current, unexpired connection of `conn_id`. A position held here costs no
        query unless other processes serve the same clients."""
        owner = (requester.user_id, requester.device_id, conn_id)
        held = self._positions.get(position_id)
        if held is None:
            row = await self.db.run(lambda conn: store.get_position(conn, position_id))
            if row is None:
                raise unknown_pos()
            held = Held(position_id, row.connection_id, row.secret,
                        (row.user_id, row.device_id, row.conn_id),
                        ConnectionState.from_json(row.state))
            self._used(row.connection_id, row.last_used_ts)
            if held.owner == owner:
                self._keep(held)
        elif self.shared or held.connection_id not in self._last_used:
            connection_id = held.connection_id
            found = await self.db.run(lambda conn: store.get_last_used(conn, connection_id))
            if found is None:
                self._drop([held.connection_id])
                raise unknown_pos()
            self._used(held.connection_id, found)
        if held.owner != owner or not pos_verifies(held.secret, position_id, seal, stream_token):
            raise unknown_pos()
        now = self.clock.now_ms()
        last_used = self._last_used[held.connection_id]
        connection_id = held.connection_id
        if now - last_used > EXPIRY_MS:
            await self.db.run(lambda conn: store.delete_connection(conn, connection_id))
            self._drop([connection_id])
            raise unknown_pos()
        if now - last_used > TOUCH_MS:
            await self.db.run(lambda conn: store.set_last_used(conn, connection_id, now))
            self._used(connection_id, now)
        self._positions.move_to_end(position_id)
        return held

    async def start(self, requester: Requester, conn_id: str, state: ConnectionState) -> Held:
        """A new connection (replacing the device's one of this `conn_id`) at its first
        position."""
        device_id = device_of(requester)
        now = self.clock.now_ms()
        secret = secrets.token_urlsafe(9)
        text = state.to_json()
        async def start(conn: asyncpg.Connection) -> store.Started:
            return await store.start_connection(
                conn, requester.user_id, device_id, conn_id, secret, now, text,
                self.per_device,
            )

        try:
            started = await self.db.run(start, name="sliding_sync_connection")
        except asyncpg.UniqueViolationError:
            # Another request of this device started the same conn_id at the same moment:
            # this one, the later, replaces it.
            started = await self.db.run(start, name="sliding_sync_connection")
        self._drop(started.dropped)
        self._used(started.connection_id, now)
        held = Held(started.position_id, started.connection_id, secret,
                    (requester.user_id, requester.device_id, conn_id), state)
        self._keep(held)
        return held

    async def advance(self, came_from: Held, state: ConnectionState) -> Held:
        """The position after `came_from` with `state`: the same one when nothing the
        connection was sent changed (no write), else a new one. M_UNKNOWN_POS when the
        connection was replaced meanwhile."""
        if state == came_from.state:
            return came_from
        text = state.to_json()
        try:
            position_id = await self.db.run(
                lambda conn: store.insert_position(
                    conn, came_from.connection_id, text, came_from.position_id
                ),
                name="sliding_sync_position",
            )
        except asyncpg.ForeignKeyViolationError:
            self._drop([came_from.connection_id])
            raise unknown_pos() from None
        held = Held(position_id, came_from.connection_id, came_from.secret, came_from.owner,
                    state)
        self._keep(held)
        return held

    def _keep(self, held: Held) -> None:
        self._positions[held.position_id] = held
        self._positions.move_to_end(held.position_id)
        while len(self._positions) > self._size:
            self._positions.popitem(last=False)

    def _used(self, connection_id: int, last_used: int) -> None:
        self._last_used[connection_id] = last_used
        self._last_used.move_to_end(connection_id)
        while len(self._last_used) > self._size:
            self._last_used.popitem(last=False)

    def _drop(self, connection_ids: list[int]) -> None:
        if not connection_ids:
            return
        gone = set(connection_ids)
        for position_id in [p for p, h in self._positions.items() if h.connection_id in gone]:
            del self._positions[position_id]
        for connection_id in gone:
            self._last_used.pop(connection_id, None)
