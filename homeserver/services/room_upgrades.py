"""Room upgrades (spec "Room Upgrades", `POST /rooms/{roomId}/upgrade`): replace a room by a
new one of another room version, and let each user's settings for the room follow them there.

Theory of operation, in the spec's order: check that the user may send `m.room.tombstone` in the
old room (before anything is created, so a refusal leaves nothing behind); create the new room
through createRoom, with `predecessor` (naming the old room's newest event) and the old room's
`type` and `m.federate` in its create event (and the `additional_creators` asked for, where the
new version has them), the old room's power levels, the state the spec lists as transferable
and, as Synapse does, the old room's `m.space.child` events; move the old room's local aliases
(and its place in the room directory) to the new room and carry its `m.room.canonical_alias`
over (the aliases now point there, so the event is valid), clearing the old room's; send the
tombstone pointing at the new room; then raise the old room's `events_default` and `invite` to
the greater of 50 and `users_default + 1` and copy its bans (MSC4167, as Synapse). The steps
after the tombstone are best effort: the spec says "should", and the upgrader may lack the power
for some of them.

"When a user joins the new room, the server should automatically transfer ... tags, etc."
(`UserSettingsCarrier`): on each local join of a room whose create event names a predecessor,
the user's tags of the old room, its place in their `m.direct`, and their push rules for it (a
`room` rule, or rules with a `room_id` condition on it) are copied, as Synapse's
`copy_user_state_on_room_upgrade` does; the upgrader's are copied at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import asyncpg

from homeserver.errors import MatrixError, bad_json, forbidden, invalid_param
from homeserver.protocol.identifiers import is_valid_room_id, is_valid_user_id
from homeserver.protocol.room_previews import SPACE_CHILD
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS, get_room_version
from homeserver.protocol.state_keys import CREATE, POWER_LEVELS
from homeserver.services.account_data import GLOBAL, AccountDataService
from homeserver.services.canonical_alias import CANONICAL_ALIAS
from homeserver.services.push import PushService
from homeserver.services.requester import Requester
from homeserver.services.room_admins import may_send_state
from homeserver.services.room_creation import RoomCreation
from homeserver.services.room_reads import RoomReads
from homeserver.services.rooms.local import LocalEvents
from homeserver.services.rooms.view import RoomView
from homeserver.services.tags import TagsService
from storage import directory as directory_store
from storage import events as events_store
from storage import rooms as rooms_store
from storage import state as state_store
from storage.database import Database

log = logging.getLogger(__name__)

TOMBSTONE = "m.room.tombstone"
DIRECT = "m.direct"
# State the spec's "Server behaviour" for upgrades lists as copied into the new room.
TRANSFERRED = (
    "m.room.server_acl", "m.room.encryption", "m.room.name", "m.room.avatar", "m.room.topic",
    "m.room.guest_access", "m.room.history_visibility", "m.room.join_rules",
)
RESTRICTED_LEVEL = 50
MAX_ADDITIONAL_CREATORS = 100


class UserSettingsCarrier:
    """Copies a user's settings for a room to its successor (see the module docstring)."""

    def __init__(
        self, db: Database, engine: RoomView, tags: TagsService,
        account_data: AccountDataService, push: PushService,
    ) -> None:
        self.db = db
        self.engine = engine
        self.tags = tags
        self.account_data = account_data
        self.push = push

    async def joined(self, user_id: str, room_id: str) -> None:
        """A local user joined ``room_id``: carry their settings over if it replaced a room.
        The join stands whatever happens here, so nothing here may fail it: a quota reached
        leaves a tag behind (logged as such), anything else (a database error, a bug) is
        logged with its traceback and the join still answers 200."""
        try:
            old = await self.db.run(lambda conn: self._predecessor(conn, room_id))
            if old is not None:
                await self.carry(user_id, old, room_id)
        except MatrixError as e:
            log.info("settings of %s not carried to %s: %s", user_id, room_id, e)
        except Exception:
            log.exception("settings of %s not carried to %s", user_id, room_id)

    async def _predecessor(self, conn: asyncpg.Connection, room_id: str) -> str | None:
        create = await state_store.get_current_state_event_id(conn, room_id, CREATE)
        if create is None:
            return None
        pdu = (await self.engine.get_pdus(conn, [create])).get(create)
        predecessor = (pdu or {}).get("content", {}).get("predecessor")
        old = predecessor.get("room_id") if isinstance(predecessor, dict) else None
        return old if isinstance(old, str) and is_valid_room_id(old) else None

    async def carry(self, user_id: str, old: str, new: str) -> None:
        """Tags, `m.direct` and push rules the user has for ``old``, where ``new`` has none."""
        held = await self.tags.get_tags(user_id, new)
        for tag, content in (await self.tags.get_tags(user_id, old)).items():
            if tag not in held and isinstance(content, dict):
                await self.tags.set_tag(user_id, new, tag, content)
        await self._carry_direct(user_id, old, new)
        await self._carry_push_rules(user_id, old, new)

    async def _carry_direct(self, user_id: str, old: str, new: str) -> None:
        try:
            direct = await self.account_data.get(user_id, GLOBAL, DIRECT)
        except MatrixError:
            return  # no m.direct
        changed = False
        for rooms in direct.values():
            if isinstance(rooms, list) and old in rooms and new not in rooms:
                rooms.append(new)
                changed = True
        if changed:
            await self.account_data.set(user_id, GLOBAL, DIRECT, direct)

    async def _carry_push_rules(self, user_id: str, old: str, new: str) -> None:
        ruleset = await self.push.ruleset(user_id)
        existing = {(kind, r["rule_id"]) for kind, rules in ruleset.items() for r in rules}
        for kind, rules in ruleset.items():
            for rule in rules:
                if rule.get("default") or not rule.get("enabled", True):
                    continue
                body: dict[str, Any] = {"actions": rule["actions"]}
                if kind == "room":
                    if rule["rule_id"] != old:
                        continue
                else:
                    conditions = rule.get("conditions") or []
                    if not any(_names_room(c, old) for c in conditions):
                        continue
                    body["conditions"] = [
                        {**c, "pattern": new} if _names_room(c, old) else c for c in conditions
                    ]
                # As Synapse: the copy is named after the new room.
                if (kind, new) not in existing:
                    await self.push.put_rule(user_id, kind, new, body, None, None)
                    existing.add((kind, new))


def _names_room(condition: Any, room_id: str) -> bool:
    return isinstance(condition, dict) and condition.get("kind") == "event_match" \
        and condition.get("key") == "room_id" and condition.get("pattern") == room_id


class RoomUpgrades:
    def __init__(
        self, db: Database, engine: RoomView, local: LocalEvents, reads: RoomReads,
        creation: RoomCreation, carrier: UserSettingsCarrier,
    ) -> None:
        self.db = db
        self.engine = engine
        self.local = local
        self.reads = reads
        self.creation = creation
        self.carrier = carrier
        # Called with each room ID whose aliases an upgrade moved (appservices' interest).
        self.on_aliases_changed: list[Callable[[str], None]] = []

    async def upgrade(
        self, requester: Requester, room_id: str, new_version: str,
        additional_creators: list[str],
    ) -> str:
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
        version = get_room_version(new_version)
        creation_content: dict[str, Any] = {
            "predecessor": {"room_id": room_id, "event_id": await self._last_event(room_id)},
        }
        room_type = create["content"].get("type")
        if isinstance(room_type, str):
            creation_content["type"] = room_type
        if create["content"].get("m.federate") is False:  # as Synapse
            creation_content["m.federate"] = False
        # Versions without additional creators ignore the field (spec).
        creators = [c for c in additional_creators if c != user] \
            if version.additional_creators else []
        if creators:
            creation_content["additional_creators"] = creators
        body: dict[str, Any] = {
            "room_version": new_version,
            "creation_content": creation_content,
            "initial_state": [
                {"type": t, "state_key": k, "content": e["content"]}
                for (t, k), e in state.items()
                if (t in TRANSFERRED and k == "") or (t == SPACE_CHILD and e["content"])
            ],
        }
        if power_content is not None:
            body["power_level_content_override"] = _carried_power(
                power_content, user, version.privileged_creators, creators
            )
        new_room = await self.creation.create_room(user, body)
        await self._move_aliases(room_id, new_room, user, state.get((CANONICAL_ALIAS, "")))
        await self.local.send(
            room_id, user, TOMBSTONE,
            {"body": "This room has been replaced", "replacement_room": new_room},
            state_key="",
        )
        if power_content is not None:
            await self._restrict(room_id, user, power_content)
        await self._copy_bans(new_room, user, state)
        await self.carrier.carry(user, room_id, new_room)
        return new_room

    async def _last_event(self, room_id: str) -> str:
        """`predecessor.event_id`: "the last known event in the old room" (the newest of its
        forward extremities)."""
        tips = await self.db.run(lambda conn: events_store.get_forward_extremities(conn, room_id))
        return max(tips, key=lambda t: (t.stream_ordering or -1, t.depth)).event_id

    async def _move_aliases(
        self, old: str, new: str, user: str, canonical: dict[str, Any] | None
    ) -> None:
        async def move(conn: asyncpg.Connection) -> None:
            await rooms_store.move_aliases(conn, old, new)
            if await directory_store.get_room_visibility(conn, old):
                await directory_store.set_room_visibility(conn, new, True)
                await directory_store.set_room_visibility(conn, old, False)

        await self.db.transaction(move, name="upgrade_aliases")
        for hook in self.on_aliases_changed:
            hook(old)
            hook(new)
        if canonical is None or not canonical["content"]:
            return
        for room_id, content in ((new, canonical["content"]), (old, {})):
            try:
                await self.local.send(room_id, user, CANONICAL_ALIAS, content, state_key="")
            except MatrixError as e:
                log.info("upgrade of %s: canonical alias of %s not set: %s", old, room_id, e)

    async def _restrict(self, room_id: str, user: str, power: dict[str, Any]) -> None:
        restricted = dict(power)
        users_default = power.get("users_default", 0)
        floor = max(
            RESTRICTED_LEVEL, (users_default if isinstance(users_default, int) else 0) + 1
        )
        for key in ("events_default", "invite"):
            current = power.get(key, 0)
            restricted[key] = max(current if isinstance(current, int) else 0, floor)
        if restricted == power:
            return
        try:
            await self.local.send(room_id, user, "m.room.power_levels", restricted,
                                   state_key="")
        except MatrixError:
            pass  # the upgrader may not change the power levels: the spec only says "should"

    async def _copy_bans(
        self, room_id: str, user: str, state: dict[tuple[str, Any], dict[str, Any]]
    ) -> None:
        for (event_type, target), event in state.items():
            if event_type != "m.room.member" or event["content"].get("membership") != "ban":
                continue
            content = {"membership": "ban"}
            reason = event["content"].get("reason")
            if isinstance(reason, str):
                content["reason"] = reason
            try:
                await self.local.send(room_id, user, "m.room.member", content, state_key=target)
            except MatrixError as e:
                log.info("upgrade into %s: ban of %s not copied: %s", room_id, target, e)


def _carried_power(
    power: dict[str, Any], creator: str, privileged: bool, additional: list[str]
) -> dict[str, Any]:
    """The old room's power levels for the new one, whose creator is the upgrader: a room
    version with privileged creators must not list them (the upgrader and the additional
    creators) in `users`; any other needs the creator at 100 (a v12 room's creator held
    infinite power without being listed)."""
    users = dict(power.get("users") or {})
    if privileged:
        for user in (creator, *additional):
            users.pop(user, None)
    else:
        users[creator] = 100
    return {**power, "users": users}


def new_version_of(body: dict[str, Any]) -> str:
    version = body.get("new_version")
    if not isinstance(version, str):
        raise bad_json("'new_version' must be a string")
    return version


def additional_creators_of(body: dict[str, Any]) -> list[str]:
    """`additional_creators` (v1.16): user IDs, each once; absent is none."""
    creators = body.get("additional_creators", [])
    if not isinstance(creators, list) or not all(isinstance(c, str) for c in creators):
        raise bad_json("'additional_creators' must be an array of user IDs")
    if len(creators) > MAX_ADDITIONAL_CREATORS:
        raise invalid_param(f"At most {MAX_ADDITIONAL_CREATORS} additional creators")
    for creator in creators:
        if not is_valid_user_id(creator):
            raise invalid_param(f"{creator!r} in 'additional_creators' is not a user ID")
    return list(dict.fromkeys(creators))
