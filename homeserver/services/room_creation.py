"""createRoom (Client-Server API "Creation"): a validated request becomes the room's first events.

The events go in the spec's order (create, the creator's join, power levels, canonical alias,
the preset's join rules / history visibility / guest access, initial_state, name, topic,
invites), each through the room engine, so the auth rules judge every one. A user of another
server is invited the way `/invite` does it: their server countersigns the invite first (the
invite handshake), or their server never hears of it. If a later event is refused, the
half-built room is abandoned: its alias is released and the creator leaves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from homeserver.config import Config
from homeserver.errors import MatrixError, bad_json, invalid_param, room_full_error, too_large
from homeserver.protocol import identifiers
from homeserver.protocol.member_limit import MEMBER_LIMIT_TYPE
from homeserver.protocol.power_levels import default_power_levels_content
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS, get_room_version
from homeserver.services.remote_server_limits import ServerLimits
from homeserver.services.rooms.local import LocalEvents
from storage import rooms as rooms_store
from storage.database import Database

ENCRYPTION = "m.room.encryption"
MEGOLM = "m.megolm.v1.aes-sha2"

# preset -> (join_rule, history_visibility, guest_access)
PRESETS = {
    "private_chat": ("invite", "shared", "can_join"),
    "trusted_private_chat": ("invite", "shared", "can_join"),
    "public_chat": ("public", "shared", "forbidden"),
}

# (user_id, membership) -> m.room.member content with the user's profile
MemberContent = Callable[[str, str], Awaitable[dict[str, Any]]]
# (alias, room_id, creator) -> None, or M_UNKNOWN if the alias is taken
PutAlias = Callable[[str, str, str], Awaitable[None]]
# (room_id, inviter, invitee, content) -> True when the invitee's server took the invite
# (a user of another server, with federation); False: the invite is ours to send
InviteRemote = Callable[[str, str, str, dict[str, Any]], Awaitable[bool]]
# (event_type, content, state_key) -> event_id
_Send = Callable[[str, dict[str, Any], str], Awaitable[str]]


class RoomCreation:
    """Builds rooms for RoomsService, which keeps the profile and alias rules it shares with
    joins, invites and the directory, and hands them in."""

    def __init__(
        self, db: Database, config: Config, engine: LocalEvents,
        member_content: MemberContent, put_alias: PutAlias, invite_remote: InviteRemote,
        server_limits: ServerLimits,
    ) -> None:
        self.db = db
        self.server_limits = server_limits  # counts the invitees' servers
        self.config = config
        self.engine = engine
        self.member_content = member_content
        self.put_alias = put_alias
        self.invite_remote = invite_remote
        self.server_name = config.server.server_name

    async def create_room(self, user: str, body: dict[str, Any]) -> str:
        """Spec createRoom: the events in the spec's order, each through the room engine."""
        req = _CreateRequest.parse(
            body, self.config.rooms.default_room_version, self.config.quotas.max_initial_state
        )
        if user in req.invite:
            raise invalid_param("The creator cannot invite themselves")
        if 1 + len(req.invite) > self.engine.max_members:
            raise room_full_error(
                self.engine.max_members, f"the invite list has {len(req.invite)}"
            )
        await self.server_limits.admit(user, {identifiers.server_name_of(u) for u in req.invite})
        alias = None
        if req.alias_name is not None:
            alias = f"#{req.alias_name}:{self.server_name}"
            valid = ":" not in req.alias_name and identifiers.is_valid_room_alias(alias)
            if not req.alias_name or not valid:
                raise invalid_param(f"Invalid room alias name {alias}")
            if await self.db.run(lambda c: rooms_store.get_alias(c, alias)) is not None:
                raise MatrixError(400, "M_ROOM_IN_USE", f"Room alias {alias} already exists")
        version = get_room_version(req.room_version)
        preset = req.preset or ("public_chat" if req.visibility == "public" else "private_chat")
        create_content = dict(req.creation_content)
        create_content["room_version"] = version.identifier
        if not version.implicit_room_creator:
            create_content["creator"] = user
        else:
            create_content.pop("creator", None)
        if preset == "trusted_private_chat" and version.privileged_creators:
            extra = create_content.get("additional_creators", [])
            if not isinstance(extra, list):
                raise bad_json("creation_content.additional_creators must be an array")
            create_content["additional_creators"] = list(dict.fromkeys([*extra, *req.invite]))
        try:
            room_id = await self.engine.create_room(
                user, version, create_content, is_public=req.visibility == "public"
            )
        except MatrixError as e:
            raise _invalid_room_state(e) from None
        try:
            await self._populate(room_id, user, req, preset, alias)
            await self._invite(room_id, user, req)
        except MatrixError as e:
            await self._abandon(room_id, user, alias)
            raise _invalid_room_state(e) from None
        return room_id

    async def _populate(
        self, room_id: str, user: str, req: _CreateRequest, preset: str, alias: str | None
    ) -> None:
        """The events after m.room.create up to the topic, in the spec's order."""
        version = get_room_version(req.room_version)
        send = self._sender(room_id, user)
        await send("m.room.member", await self.member_content(user, "join"), user)
        power = default_power_levels_content(user, version, preset, invitees=req.invite)
        power.update(req.power_level_override)
        await send("m.room.power_levels", power, "")
        if alias is not None:
            await self.put_alias(alias, room_id, user)
            await send("m.room.canonical_alias", {"alias": alias}, "")
        if self._encrypt_by_default(preset, req) and not any(
            st["type"] == ENCRYPTION and st["state_key"] == "" for st in req.initial_state
        ):
            req.initial_state.append(
                {"type": ENCRYPTION, "state_key": "", "content": {"algorithm": MEGOLM}}
            )
        join_rule, history, guest = PRESETS[preset]
        await send("m.room.join_rules", {"join_rule": join_rule}, "")
        await send("m.room.history_visibility", {"history_visibility": history}, "")
        await send("m.room.guest_access", {"guest_access": guest}, "")
        await send(MEMBER_LIMIT_TYPE, {"max_members": self.engine.max_members}, "")
        for state in req.initial_state:
            await send(state["type"], state["content"], state["state_key"])
        if req.name is not None:
            await send("m.room.name", {"name": req.name}, "")
        if req.topic is not None:
            await send("m.room.topic", {"topic": req.topic}, "")

    async def _invite(self, room_id: str, user: str, req: _CreateRequest) -> None:
        """The invites, last; `is_direct` in each. Not rate limited one by one (as Synapse):
        the request was, and `server_limits` counted the invitees' servers up front."""
        send = self._sender(room_id, user)
        for invitee in req.invite:
            content = await self.member_content(invitee, "invite")
            if req.is_direct:
                content["is_direct"] = True
            if not await self.invite_remote(room_id, user, invitee, content):
                await send("m.room.member", content, invitee)

    async def _abandon(self, room_id: str, user: str, alias: str | None) -> None:
        """Undo what a half-built room would show: its alias and the creator's seat."""
        if alias is not None:
            name = alias
            row = await self.db.run(lambda c: rooms_store.get_alias(c, name))
            if row is not None and row["room_id"] == room_id:
                await self.db.run(lambda c: rooms_store.delete_alias(c, name))
        try:
            await self.engine.send(
                room_id, user, "m.room.member", {"membership": "leave"}, state_key=user
            )
        except MatrixError:
            pass  # the creator never joined: there is no seat to give up

    def _encrypt_by_default(self, preset: str, req: _CreateRequest) -> bool:
        """`encryption.default`: new rooms of the configured kind start encrypted."""
        policy = self.config.encryption.default
        private = preset in ("private_chat", "trusted_private_chat") or req.is_direct
        return policy == "all" or (policy == "private" and private)

    def _sender(self, room_id: str, user: str) -> _Send:
        async def send(event_type: str, content: dict[str, Any], state_key: str) -> str:
            return await self.engine.send(room_id, user, event_type, content, state_key=state_key)
        return send


class _CreateRequest:
    """A validated createRoom body: every wrong type is M_BAD_JSON before anything is created."""

    def __init__(self) -> None:
        self.room_version = ""
        self.preset: str | None = None
        self.visibility = "private"
        self.alias_name: str | None = None
        self.name: str | None = None
        self.topic: str | None = None
        self.invite: list[str] = []
        self.is_direct = False
        self.creation_content: dict[str, Any] = {}
        self.power_level_override: dict[str, Any] = {}
        self.initial_state: list[dict[str, Any]] = []

    @classmethod
    def parse(
        cls, body: dict[str, Any], default_version: str, max_initial_state: int
    ) -> _CreateRequest:
        """`max_initial_state`: each entry becomes an event through the room engine."""
        req = cls()
        req.room_version = _opt(body, "room_version", str) or default_version
        if req.room_version not in KNOWN_ROOM_VERSIONS:
            raise MatrixError(
                400, "M_UNSUPPORTED_ROOM_VERSION",
                f"Room version {req.room_version!r} is not supported; "
                f"choose one of {sorted(KNOWN_ROOM_VERSIONS, key=int)}",
            )
        req.preset = _opt(body, "preset", str)
        if req.preset is not None and req.preset not in PRESETS:
            raise bad_json(f"Unknown preset {req.preset!r}")
        req.visibility = _opt(body, "visibility", str) or "private"
        if req.visibility not in ("public", "private"):
            raise bad_json("visibility must be 'public' or 'private'")
        req.alias_name = _opt(body, "room_alias_name", str)
        req.name = _opt(body, "name", str)
        req.topic = _opt(body, "topic", str)
        req.is_direct = _opt(body, "is_direct", bool) or False
        invite = _opt(body, "invite", list) or []
        if not all(isinstance(u, str) for u in invite):
            raise bad_json("invite must be a list of strings")
        if not all(identifiers.is_valid_user_id(u) for u in invite):
            raise invalid_param("invite must be a list of user IDs")
        req.invite = list(dict.fromkeys(invite))
        req.creation_content = _opt(body, "creation_content", dict) or {}
        req.power_level_override = _opt(body, "power_level_content_override", dict) or {}
        initial_state = _opt(body, "initial_state", list) or []
        if len(initial_state) > max_initial_state:
            raise too_large(f"initial_state may hold at most {max_initial_state} entries")
        for item in initial_state:
            if not isinstance(item, dict) or not isinstance(item.get("type"), str):
                raise bad_json("initial_state entries need a string 'type'")
            if item["type"] == "m.room.create":
                raise MatrixError(
                    400, "M_INVALID_ROOM_STATE", "initial_state cannot hold m.room.create"
                )
            state_key = item.get("state_key", "")
            content = item.get("content", {})
            if not isinstance(state_key, str) or not isinstance(content, dict):
                raise bad_json("initial_state entries need a string state_key and object content")
            req.initial_state.append(
                {"type": item["type"], "state_key": state_key, "content": content}
            )
        return req


def _invalid_room_state(error: MatrixError) -> MatrixError:
    """A refused event implied by the createRoom parameters is the spec's
    400 M_INVALID_ROOM_STATE; other errors (too large, bad JSON) keep their own code."""
    if error.status != 403:
        return error
    return MatrixError(400, "M_INVALID_ROOM_STATE", error.error)


def _opt(body: dict[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    wrong_bool = isinstance(value, bool) != (kind is bool)
    if value is not None and (not isinstance(value, kind) or wrong_bool):
        raise bad_json(f"'{key}' has the wrong type; expected {kind.__name__}")
    return value
