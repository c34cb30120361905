"""Room upgrades (spec "Room Upgrades", `POST /rooms/{roomId}/upgrade`): replace a room by a
new one of another room version.

Theory of operation, in the spec's order: check that the user may send `m.room.tombstone` in the
old room (before anything is created, so a refusal leaves nothing behind); create the new room
through createRoom, with `predecessor` in its create event, the old room's power levels and the
state the spec lists as transferable; send the tombstone pointing at it; then raise the old
room's `events_default` and `invite` levels to at least 50 (best effort, as the spec says
"should"), so that ordinary members stop talking and inviting there. The old room's aliases are
not moved: `m.room.canonical_alias` must name aliases of its own room, so the new room starts
without one.
"""

from __future__ import annotations

from typing import Any

from homeserver.errors import MatrixError, bad_json, forbidden
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS, get_room_version
from homeserver.protocol.state_keys import CREATE, POWER_LEVELS
from homeserver.services.requester import Requester
from homeserver.services.room_admins import may_send_state
from homeserver.services.room_creation import RoomCreation
from homeserver.services.room_reads import RoomReads
from homeserver.services.rooms.local import LocalEvents
from homeserver.services.rooms.view import RoomView
from storage.database import Database

TOMBSTONE = "m.room.tombstone"
# State the spec's "Server behaviour" for upgrades lists as copied into the new room.
TRANSFERRED = (
    "m.room.server_acl", "m.room.encryption", "m.room.name", "m.room.avatar", "m.room.topic",
    "m.room.guest_access", "m.room.history_visibility", "m.room.join_rules",
)
RESTRICTED_LEVEL = 50


class RoomUpgrades:
    def __init__(
        self, db: Database, engine: RoomView, local: LocalEvents, reads: RoomReads,
        creation: RoomCreation,
    ) -> None:
        self.db = db
        self.engine = engine
        self.local = local
        self.reads = reads
        self.creation = creation

    async def upgrade(self, requester: Requester, room_id: str, new_version: str) -> str:
        """The replacement room's ID."""
        if new_version not in KNOWN_ROOM_VERSIONS:
            raise MatrixError(400, "M_UNSUPPORTED_ROOM_VERSION",
                              f"Room version {new_version!r} is not supported")
        # Judged on the current state before anything is created: a former admin may still
        # read the room as it was, but upgrading it is an act in the room as it is.
        if not await self.db.run(lambda conn: may_send_state(
            conn, self.engine, room_id, requester.user_id, TOMBSTONE
        )):
            raise forbidden("You may not upgrade this room")
        state = {
            (e["type"], e.get("state_key")): e
            for e in await self.reads.state(requester, room_id)
        }
        create = state[CREATE]
        power = state.get(POWER_LEVELS)
        power_content = dict(power["content"]) if power else None
        user = requester.user_id
        body: dict[str, Any] = {
            "room_version": new_version,
            "creation_content": {
                "predecessor": {"room_id": room_id, "event_id": create["event_id"]},
            },
            "initial_state": [
                {"type": t, "state_key": "", "content": state[(t, "")]["content"]}
                for t in TRANSFERRED if (t, "") in state
            ],
        }
        if power_content is not None:
            body["power_level_content_override"] = _carried_power(
                power_content, user, get_room_version(new_version).privileged_creators
            )
        new_room = await self.creation.create_room(user, body)
        await self.local.send(
            room_id, user, TOMBSTONE,
            {"body": "This room has been replaced", "replacement_room": new_room},
            state_key="",
        )
        if power_content is not None:
            await self._restrict(room_id, user, power_content)
        return new_room

    async def _restrict(self, room_id: str, user: str, power: dict[str, Any]) -> None:
        restricted = dict(power)
        for key in ("events_default", "invite"):
            current = power.get(key, 0)
            restricted[key] = max(current if isinstance(current, int) else 0, RESTRICTED_LEVEL)
        if restricted == power:
            return
        try:
            await self.local.send(room_id, user, "m.room.power_levels", restricted,
                                   state_key="")
        except MatrixError:
            pass  # the upgrader may not change the power levels: the spec only says "should"


def _carried_power(power: dict[str, Any], creator: str, privileged: bool) -> dict[str, Any]:
    """The old room's power levels for the new one, whose creator is the upgrader: a room
    version with privileged creators must not list them in `users`; any other needs the
    creator at 100 (a v12 room's creator held infinite power without being listed)."""
    users = dict(power.get("users") or {})
    if privileged:
        users.pop(creator, None)
    else:
        users[creator] = 100
    return {**power, "users": users}


def new_version_of(body: dict[str, Any]) -> str:
    version = body.get("new_version")
    if not isinstance(version, str):
        raise bad_json("'new_version' must be a string")
    return version
