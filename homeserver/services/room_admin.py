"""A server admin's view of and hand on rooms (Synapse's admin "rooms" and "room membership"
APIs): listing and inspecting rooms, blocking them, granting a user room admin and
force-joining a local user. Every event it causes is sent by a member of the room through the
room engine (`RoomsService`), under the auth rules like any other."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import asyncpg

from homeserver.errors import MatrixError, invalid_param, not_found
from homeserver.protocol import identifiers
from homeserver.protocol.power_levels import (
    PowerLevel,
    event_power_level,
    required_level,
    user_power_level,
)
from homeserver.protocol.room_versions import RoomVersion
from homeserver.protocol.state_keys import CREATE, JOIN_RULES, POWER_LEVELS
from homeserver.services.clock import Clock
from homeserver.services.event_views import load_events, serialize_events
from homeserver.services.requester import NO_DEVICE, Requester
from homeserver.services.room_operations import RoomsService
from homeserver.services.rooms.view import RoomView
from storage import accounts as accounts_store
from storage import admin_rooms as store
from storage import blocked_rooms
from storage import state as state_store
from storage.admin_rooms import RoomQuery
from storage.database import Database

# The fields of a room in a listing, in Synapse's order; the details add DETAIL_FIELDS.
LIST_FIELDS = (
    "room_id", "name", "canonical_alias", "joined_members", "joined_local_members", "version",
    "creator", "encryption", "federatable", "public", "join_rules", "guest_access",
    "history_visibility", "state_events", "room_type",
)
DETAIL_FIELDS = (
    "topic", "avatar", "joined_local_devices", "forgotten", "tombstoned", "replacement_room",
)
# Columns whose name differs from the field's.
_COLUMNS = {"version": "room_version", "public": "is_public"}


def _fields(row: asyncpg.Record, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: row[_COLUMNS.get(name, name)] for name in names}


@dataclass(frozen=True, slots=True)
class RoomPower:
    """Who of this server may do what in a room now: its local joined members' power levels,
    the power levels' content, the join rule and the membership of one user asked about."""

    room_version: RoomVersion
    create: dict[str, Any]
    levels: dict[str, Any] | None
    join_rule: str | None
    target_membership: str | None
    local_levels: dict[str, PowerLevel]

    def level_of(self, user_id: str) -> PowerLevel:
        return user_power_level(user_id, self.levels, self.create, self.room_version)

    def strongest(self, needed: int) -> str | None:
        """The local member with the highest level, if it reaches `needed` (ties: the first
        user ID, so the choice does not depend on the order members were read in)."""
        able = [(-lvl, user) for user, lvl in self.local_levels.items() if lvl >= needed]
        return min(able)[1] if able else None


class RoomAdmin:
    def __init__(self, db: Database, engine: RoomView, rooms: RoomsService, clock: Clock) -> None:
        self.db = db
        self.engine = engine
        self.rooms = rooms
        self.clock = clock
        self.server_name = rooms.server_name
        self.local = ":" + rooms.server_name  # the end of every local user ID

    # ---- reading ------------------------------------------------------------------------------

    async def list_rooms(
        self, *, search: str | None, public: bool | None, empty: bool | None, order_by: str,
        forwards: bool, offset: int, limit: int,
    ) -> dict[str, Any]:
        """A page of rooms (see `RoomQuery`) with Synapse's paging fields: `offset`,
        `total_rooms` and, when there are more, `next_batch` and `prev_batch` (the offsets to
        ask for next)."""
        if order_by not in store.ORDERS:
            raise invalid_param(f"Unknown order_by {order_by!r}")
        query = RoomQuery(search, public, empty, order_by, forwards)

        async def read(conn: asyncpg.Connection) -> tuple[int, list[asyncpg.Record]]:
            total = await store.count_rooms(conn, self.local, query)
            return total, await store.list_rooms(conn, self.local, query, offset, limit)

        total, rows = await self.db.run(read)
        body: dict[str, Any] = {
            "rooms": [_fields(row, LIST_FIELDS) for row in rows], "offset": offset,
            "total_rooms": total,
        }
        if offset + limit < total:
            body["next_batch"] = offset + limit
        if offset > 0:
            body["prev_batch"] = max(0, offset - limit)
        return body

    async def room(self, room_id: str) -> dict[str, Any]:
        row = await self.db.run(lambda c: store.get_room(c, self.local, room_id))
        if row is None:
            raise not_found(f"Room {room_id} not found")
        return _fields(row, LIST_FIELDS + DETAIL_FIELDS)

    async def members(self, room_id: str) -> dict[str, Any]:
        """The room's joined members (Synapse's answer), whoever's server they are on."""
        async def read(conn: asyncpg.Connection) -> list[str]:
            await self.engine.room_version(conn, room_id)  # 404 for unknown rooms
            return [r["user_id"] for r in await state_store.get_members(conn, room_id, ["join"])]

        members = await self.db.run(read)
        return {"members": members, "total": len(members)}

    async def state(self, room_id: str, event_type: str | None) -> list[dict[str, Any]]:
        """The room's current state events (of `event_type` only, when given)."""
        async def read(conn: asyncpg.Connection) -> list[dict[str, Any]]:
            await self.engine.room_version(conn, room_id)  # 404 for unknown rooms
            types = None if event_type is None else [event_type]
            ids = await state_store.get_current_state(conn, room_id, types)
            stored = await load_events(conn, list(ids.values()))
            return await serialize_events(conn, self.engine, stored, None, now=self.clock.now_ms())

        return await self.db.run(read)

    # ---- blocking -----------------------------------------------------------------------------

    async def set_blocked(self, admin: Requester, room_id: str, block: bool) -> None:
        """Block or unblock a room, known here or not (Synapse allows blocking ahead)."""
        if block:
            now = self.clock.now_ms()
            await self.db.run(
                lambda c: blocked_rooms.insert_block(c, room_id, admin.user_id, now)
            )
        else:
            await self.db.run(lambda c: blocked_rooms.delete_block(c, room_id))

    async def blocked_by(self, room_id: str) -> str | None:
        return await self.db.run(lambda c: blocked_rooms.get_blocker(c, room_id))

    # ---- acting in rooms ----------------------------------------------------------------------

    async def _power(self, room_id: str, user_id: str) -> RoomPower:
        async def read(conn: asyncpg.Connection) -> RoomPower:
            version = await self.engine.room_version(conn, room_id)  # 404 for unknown rooms
            keys = [CREATE, POWER_LEVELS, JOIN_RULES, ("m.room.member", user_id)]
            state = await state_store.get_current_state_for_keys(conn, room_id, keys)
            pdus = await self.engine.get_pdus(conn, list(state.values()))
            create, levels, rules, member = (pdus.get(state.get(k, "")) for k in keys)
            if create is None:
                raise MatrixError(400, "M_UNKNOWN", "This server is not in the room")
            members = await self.engine.joined_members(conn, room_id)
            power = RoomPower(
                version, create, levels["content"] if levels else None,
                rules["content"].get("join_rule") if rules else None,
                member["content"].get("membership") if member else None, {},
            )
            for m in members:
                if self.engine.is_local(m):
                    power.local_levels[m] = power.level_of(m)
            return power

        return await self.db.run(read)

    async def make_room_admin(self, room: str, user_id: str) -> None:
        """Give `user_id` the highest power level of the room's local members, set by the
        strongest local member who may change the power levels (400 when none may: every
        admin of the room has left it); then, unless the user is joined or the room is
        public, invite them (Synapse's "Make Room Admin")."""
        if not identifiers.is_valid_user_id(user_id):
            raise invalid_param(f"Invalid user ID {user_id!r}")
        room_id = await self.rooms.resolve_room(room)
        power = await self._power(room_id, user_id)
        if power.levels is None:
            raise MatrixError(400, "M_UNKNOWN", "The room has no power levels to change")
        granter = power.strongest(event_power_level(*POWER_LEVELS, power.levels))
        if granter is None:
            raise MatrixError(
                400, "M_UNKNOWN", "No local user in the room may change its power levels"
            )
        level = power.local_levels[granter]
        if level == math.inf:  # a creator of a v12 room: the highest level a user map holds
            listed = [v for v in power.levels.get("users", {}).values() if isinstance(v, int)]
            level = max([100, event_power_level(*POWER_LEVELS, power.levels), *listed])
        if power.level_of(user_id) < level:
            users = power.levels.get("users")
            content = {
                **power.levels, "users": {**(users if isinstance(users, dict) else {}),
                                          user_id: int(level)},
            }
            await self.rooms.local.send(
                room_id, granter, POWER_LEVELS[0], content, state_key=POWER_LEVELS[1]
            )
        if power.target_membership != "join" and power.join_rule != "public":
            await self.rooms.set_membership(
                Requester(granter, NO_DEVICE), room_id, user_id, "invite", None
            )

    async def force_join(self, admin: Requester, room: str, user_id: str) -> str:
        """Join a local user to a room (Synapse's "Edit Room Membership"): a room whose join
        rule is not public invites them first, from the admin when they are in it with the
        power to invite, else from the strongest local member who may."""
        if not identifiers.is_valid_user_id(user_id):
            raise invalid_param(f"Invalid user ID {user_id!r}")
        if identifiers.server_name_of(user_id) != self.server_name:
            raise invalid_param("This endpoint can only be used with local users")
        if await self.db.run(lambda c: accounts_store.get_user(c, user_id)) is None:
            raise not_found(f"User {user_id} not found")
        room_id, servers = await self.rooms.target(room, [])
        if await self.db.run(lambda c: self._has_members(c, room_id)):
            power = await self._power(room_id, user_id)
            if power.target_membership != "join" and power.join_rule != "public":
                needed = required_level(power.levels, "invite")
                inviter = admin.user_id
                if power.local_levels.get(inviter, -math.inf) < needed:
                    inviter = power.strongest(needed) or admin.user_id
                await self.rooms.set_membership(
                    Requester(inviter, NO_DEVICE), room_id, user_id, "invite", None
                )
        return await self.rooms.join(Requester(user_id, NO_DEVICE), room_id, {}, servers)

    async def _has_members(self, conn: asyncpg.Connection, room_id: str) -> bool:
        """Whether the room has joined members here (else a join goes over federation, and
        nobody here could invite)."""
        return bool(await self.engine.joined_members(conn, room_id))
