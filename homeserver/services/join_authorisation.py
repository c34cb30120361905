"""Whom this server names as the authoriser of a join of a restricted room, for a local
user's `/join` and for another server's `make_join`/`send_join` alike (the rules are in
`homeserver.protocol.restricted_joins`; each caller turns the verdict into its own API's
errors); and whether a room lets guest accounts join (spec "Guest Access")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg

from homeserver.protocol.identifiers import server_name_of
from homeserver.protocol.restricted_joins import allowed_rooms, is_restricted, may_authorise
from homeserver.protocol.state_keys import CREATE, GUEST_ACCESS, JOIN_RULES, POWER_LEVELS
from storage import state as state_store

if TYPE_CHECKING:
    from homeserver.services.rooms.view import RoomView

@dataclass(frozen=True, slots=True)
class JoinAuthorisation:
    """What a room's join rule asks of one user's join, as this server sees it now."""

    needed: bool  # restricted, and the user is neither invited nor joined
    qualifies: bool = False  # joined to one of the rooms the rule allows
    authoriser: str | None = None  # one of our users who may invite (when needed)
    # Other servers with a user who may invite: where to join through when we have none.
    other_servers: tuple[str, ...] = ()


async def authorise_join(
    conn: asyncpg.Connection, engine: RoomView, room_id: str, user_id: str
) -> JoinAuthorisation:
    """The verdict from the room's current state (the auth rules check the join again)."""
    room_version = await engine.room_version(conn, room_id)
    member = ("m.room.member", user_id)
    ids = await state_store.get_current_state_for_keys(
        conn, room_id, [JOIN_RULES, POWER_LEVELS, CREATE, member]
    )
    pdus = await engine.get_pdus(conn, list(ids.values()))
    state = {k: pdus[i] for k, i in ids.items() if i in pdus}
    rule = state.get(JOIN_RULES, {}).get("content", {})
    membership = state.get(member, {}).get("content", {}).get("membership")
    if not is_restricted(rule, room_version) or membership in ("invite", "join"):
        return JoinAuthorisation(needed=False)
    memberships = await engine.memberships(conn, user_id)
    if not any(
        r in memberships and memberships[r].membership == "join" for r in allowed_rooms(rule)
    ):
        return JoinAuthorisation(needed=True)
    able = may_authorise(
        await engine.joined_members(conn, room_id), state.get(POWER_LEVELS, {}).get("content"),
        state.get(CREATE, {}), room_version,
    )
    ours = [u for u in able if engine.is_local(u)]
    others = dict.fromkeys(server_name_of(u) for u in able if not engine.is_local(u))
    return JoinAuthorisation(
        needed=True, qualifies=True, authoriser=ours[0] if ours else None,
        other_servers=tuple(others),
    )


async def guests_may_join(conn: asyncpg.Connection, engine: RoomView, room_id: str) -> bool:
    """Whether the room's current `m.room.guest_access` is `can_join` (False for a room this
    server has no state of: a guest joins only rooms this server can check)."""
    ids = await state_store.get_current_state_for_keys(conn, room_id, [GUEST_ACCESS])
    pdus = await engine.get_pdus(conn, list(ids.values()))
    return any(p.get("content", {}).get("guest_access") == "can_join" for p in pdus.values())
