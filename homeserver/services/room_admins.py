"""Who is a room's admin for what lies outside the room's events: publishing it in the room
directory, deleting an alias of it someone else made, being told why an alias is refused.

As in Synapse (`check_can_change_room_list`): a joined member with the power level to send
`m.room.canonical_alias`, the event by which the room itself publishes its aliases.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg

from homeserver.protocol.power_levels import event_power_level, user_power_level
from homeserver.protocol.state_keys import CREATE, POWER_LEVELS
from storage import state as state_store

if TYPE_CHECKING:
    from homeserver.services.rooms.view import RoomView

ADMIN_EVENT_TYPE = "m.room.canonical_alias"


async def is_room_admin(
    conn: asyncpg.Connection, engine: RoomView, room_id: str, user_id: str
) -> bool:
    """Whether `user_id` is joined to the room and may change its canonical alias (M_NOT_FOUND
    for a room this server does not know)."""
    return await may_send_state(conn, engine, room_id, user_id, ADMIN_EVENT_TYPE)


async def may_send_state(
    conn: asyncpg.Connection, engine: RoomView, room_id: str, user_id: str, event_type: str
) -> bool:
    """Whether `user_id` is joined to the room now and has the power level to send the state
    event `event_type` (M_NOT_FOUND for a room this server does not know)."""
    version = await engine.room_version(conn, room_id)
    keys = [CREATE, POWER_LEVELS, ("m.room.member", user_id)]
    state = await state_store.get_current_state_for_keys(conn, room_id, keys)
    pdus = await engine.get_pdus(conn, list(state.values()))
    create, levels, member = (pdus.get(state.get(k, "")) for k in keys)
    if member is None or member["content"].get("membership") != "join" or create is None:
        return False
    pl_content = levels["content"] if levels is not None else None
    needed = event_power_level(event_type, "", pl_content)
    return user_power_level(user_id, pl_content, create, version) >= needed
