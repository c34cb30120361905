"""Room operations a client asks for: create, membership, sending, aliases.

Each turns a request into one or more events for the room engine; the engine alone decides
whether an event is allowed. What is checked here is only what the auth rules cannot know
(room versions on offer, aliases, the member cap of a createRoom invite list, redaction
ownership).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeserver.config import Config
from homeserver.errors import MatrixError, bad_json, forbidden, not_found
from homeserver.protocol import identifiers
from homeserver.protocol.power_levels import (
    default_power_levels_content,
    required_level,
    user_power_level,
)
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS, get_room_version
from homeserver.services.ratelimit import RateLimiter
from homeserver.services.requester import Requester
from homeserver.services.room_engine import ClientTxn, RoomEngine
from homeserver.services.room_reads import RoomReads
from storage import events as events_store
from storage import rooms as rooms_store
from storage import state as state_store
from storage.database import Database

if TYPE_CHECKING:
    from homeserver.services.accounts import AccountsService

ENCRYPTION = "m.room.encryption"
MEGOLM = "m.megolm.v1.aes-sha2"

PRESETS = {
    "private_chat": ("invite", "shared", "can_join"),
    "trusted_private_chat": ("invite", "shared", "can_join"),
    "public_chat": ("public", "shared", "forbidden"),
}

# action -> (the membership it sends, the target's memberships it needs; empty: any)
MEMBERSHIP_ACTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "invite": ("invite", ()),
    "leave": ("leave", ()),
    "kick": ("leave", ("join", "invite", "knock")),
    "ban": ("ban", ()),
    "unban": ("leave", ("ban",)),
}


class RoomsService:
    def __init__(
        self, db: Database, config: Config, engine: RoomEngine, accounts: AccountsService,
        ratelimiter: RateLimiter,
    ) -> None:
        self.db = db
        self.config = config
        self.engine = engine
        self.accounts = accounts
        self.ratelimiter = ratelimiter
        self.server_name = config.server.server_name
        self.reads = RoomReads(db, engine)

    # ---- createRoom -------------------------------------------------------------------------

    async def create_room(self, requester: Requester, body: dict[str, Any]) -> str:
        """Spec createRoom: the events in the spec's order, each through the room engine."""
        self.ratelimiter.check("per_user", requester.user_id)
        req = _CreateRequest.parse(body, self.config.rooms.default_room_version)
        user = requester.user_id
        if user in req.invite:
            raise MatrixError(400, "M_INVALID_PARAM", "The creator cannot invite themselves")
        if 1 + len(req.invite) > self.engine.max_members:
            raise forbidden(
                f"Room is full: it holds at most {self.engine.max_members} members "
                f"(joined and invited users count); the invite list has {len(req.invite)}"
            )
        alias = None
        if req.alias_name is not None:
            alias = f"#{req.alias_name}:{self.server_name}"
            valid = ":" not in req.alias_name and identifiers.is_valid_room_alias(alias)
            if not req.alias_name or not valid:
                raise MatrixError(400, "M_INVALID_PARAM", f"Invalid room alias name {alias}")
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
        except MatrixError as e:
            await self._abandon(room_id, user, alias)
            raise _invalid_room_state(e) from None
        return room_id

    async def _populate(
        self, room_id: str, user: str, req: _CreateRequest, preset: str, alias: str | None
    ) -> None:
        """The events after m.room.create, in the spec's order."""
        version = get_room_version(req.room_version)
        send = self._sender(room_id, user)
        await send("m.room.member", await self._member_content(user, "join"), user)
        power = default_power_levels_content(user, version, preset, invitees=req.invite)
        power.update(req.power_level_override)
        await send("m.room.power_levels", power, "")
        if alias is not None:
            await self._put_alias(alias, room_id, user)
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
        for state in req.initial_state:
            await send(state["type"], state["content"], state["state_key"])
        if req.name is not None:
            await send("m.room.name", {"name": req.name}, "")
        if req.topic is not None:
            await send("m.room.topic", {"topic": req.topic}, "")
        for invitee in req.invite:
            content = await self._member_content(invitee, "invite")
            if req.is_direct:
                content["is_direct"] = True
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
        policy = self.config.encryption.default
        private = preset in ("private_chat", "trusted_private_chat") or req.is_direct
        return policy == "all" or (policy == "private" and private)

    def _sender(self, room_id: str, user: str) -> Any:
        async def send(event_type: str, content: dict[str, Any], state_key: str) -> str:
            return await self.engine.send(room_id, user, event_type, content, state_key=state_key)
        return send

    async def _member_content(self, user_id: str, membership: str) -> dict[str, Any]:
        """Member event content with the user's profile, if this server knows it."""
        content: dict[str, Any] = {"membership": membership}
        if identifiers.server_name_of(user_id) == self.server_name:
            try:
                profile = await self.accounts.get_profile(user_id)
            except MatrixError:
                return content
            for key in ("displayname", "avatar_url"):
                if profile.get(key) is not None:
                    content[key] = profile[key]
        return content

    # ---- membership -------------------------------------------------------------------------

    async def resolve_room(self, room_id_or_alias: str) -> str:
        if room_id_or_alias.startswith("#"):
            row = await self.db.run(lambda c: rooms_store.get_alias(c, room_id_or_alias))
            if row is None:
                raise not_found(f"Room alias {room_id_or_alias} not found")
            room_id: str = row["room_id"]
            return room_id
        if not identifiers.is_valid_room_id(room_id_or_alias):
            raise MatrixError(400, "M_INVALID_PARAM", f"Invalid room ID {room_id_or_alias!r}")
        return room_id_or_alias

    async def join(self, requester: Requester, room_id_or_alias: str, reason: str | None) -> str:
        room_id = await self.resolve_room(room_id_or_alias)
        await self.engine.db.run(lambda c: self.engine.room_version(c, room_id))
        content = await self._member_content(requester.user_id, "join")
        await self._membership(requester, room_id, requester.user_id, content, reason)
        return room_id

    async def set_membership(
        self, requester: Requester, room_id: str, target: str, action: str,
        reason: str | None,
    ) -> None:
        """invite, leave (own), kick, ban or unban `target` (an action of `MEMBERSHIP_ACTIONS`).

        The auth rules allow a kick of someone not in the room and an unban of someone not
        banned; the spec's endpoints refuse both with 403, so that is checked here.
        """
        if not identifiers.is_valid_user_id(target):
            raise MatrixError(400, "M_INVALID_PARAM", f"Invalid user ID {target!r}")
        membership, required = MEMBERSHIP_ACTIONS[action]
        if required:
            async def current(conn: Any) -> str | None:
                await self.engine.room_version(conn, room_id)  # 404 for unknown rooms
                row = await state_store.get_membership(conn, room_id, target)
                return None if row is None else str(row["membership"])
            if await self.db.run(current) not in required:
                raise forbidden(f"Cannot {action} {target}: their membership does not allow it")
        if membership == "invite":
            content = await self._member_content(target, "invite")
        else:
            content = {"membership": membership}
        await self._membership(requester, room_id, target, content, reason)

    async def _membership(
        self, requester: Requester, room_id: str, target: str, content: dict[str, Any],
        reason: str | None,
    ) -> None:
        self.ratelimiter.check("per_user", requester.user_id)
        if reason is not None:
            content["reason"] = reason
        await self.engine.send(
            room_id, requester.user_id, "m.room.member", content, state_key=target
        )

    async def forget(self, requester: Requester, room_id: str) -> None:
        async def run(conn: Any) -> None:
            row = await state_store.get_membership(conn, room_id, requester.user_id)
            if row is not None and row["membership"] in ("join", "invite", "knock"):
                raise MatrixError(400, "M_UNKNOWN", "Leave the room before forgetting it")
            await state_store.forget_room(conn, room_id, requester.user_id)
        await self.db.transaction(run, name="forget_room")

    async def joined_rooms(self, requester: Requester) -> list[str]:
        rows = await self.db.run(
            lambda c: state_store.get_rooms_for_user(c, requester.user_id, ["join"])
        )
        return [r["room_id"] for r in rows]

    # ---- sending ------------------------------------------------------------------------------

    async def send_event(
        self, requester: Requester, room_id: str, event_type: str, content: dict[str, Any],
        *, state_key: str | None = None, txn_id: str | None = None,
    ) -> str:
        self.ratelimiter.check("per_user", requester.user_id)
        if state_key is None and event_type == "m.room.redaction":
            raise forbidden("Redactions are sent with the /redact endpoint")
        txn = None
        if txn_id is not None:
            scope = f"send/{room_id}/{event_type}"
            txn = ClientTxn(requester.user_id, requester.device_id, txn_id, scope)
        return await self.engine.send(
            room_id, requester.user_id, event_type, content, state_key=state_key, txn=txn
        )

    async def redact(
        self, requester: Requester, room_id: str, event_id: str, reason: str | None,
        txn_id: str,
    ) -> str:
        """Redact an event: allowed for its sender, or for users with the `redact` level."""
        self.ratelimiter.check("per_user", requester.user_id)

        async def check(conn: Any) -> dict[str, Any]:
            version = await self.engine.room_version(conn, room_id)
            stored = (await events_store.get_events(conn, [event_id])).get(event_id)
            if stored is None or stored.room_id != room_id:
                raise not_found("Event not found")
            target = (await self.engine.get_pdus(conn, [event_id]))[event_id]
            return {"version": version, "target": target}

        found = await self.db.run(check)
        version, target = found["version"], found["target"]
        if target["sender"] != requester.user_id:
            await self._require_redact_power(requester.user_id, room_id, version)
        content: dict[str, Any] = {} if reason is None else {"reason": reason}
        txn = ClientTxn(
            requester.user_id, requester.device_id, txn_id, f"redact/{room_id}/{event_id}"
        )
        return await self.engine.send(
            room_id, requester.user_id, "m.room.redaction", content, txn=txn, redacts=event_id
        )

    async def _require_redact_power(self, user_id: str, room_id: str, version: Any) -> None:
        async def levels(conn: Any) -> tuple[dict[str, Any] | None, dict[str, Any]]:
            state = await state_store.get_current_state(
                conn, room_id, ["m.room.power_levels", "m.room.create"]
            )
            pdus = await self.engine.get_pdus(conn, list(state.values()))
            pl = pdus.get(state.get(("m.room.power_levels", ""), ""))
            create = pdus[state[("m.room.create", "")]]
            return (pl["content"] if pl else None), create

        pl_content, create = await self.db.run(levels)
        if user_power_level(user_id, pl_content, create, version) < required_level(
            pl_content, "redact"
        ):
            raise forbidden("You may only redact your own events")

    # ---- aliases ------------------------------------------------------------------------------

    async def put_alias(self, requester: Requester, alias: str, room_id: str) -> None:
        if not identifiers.is_valid_room_alias(alias):
            raise MatrixError(400, "M_INVALID_PARAM", f"Invalid room alias {alias!r}")
        if identifiers.server_name_of(alias) != self.server_name:
            raise MatrixError(400, "M_INVALID_PARAM", "Aliases must be on this server")
        await self.db.run(lambda c: self.engine.room_version(c, room_id))
        await self._put_alias(alias, room_id, requester.user_id)

    async def _put_alias(self, alias: str, room_id: str, creator: str) -> None:
        created = await self.db.run(lambda c: rooms_store.insert_alias(c, alias, room_id, creator))
        if not created:
            raise MatrixError(409, "M_UNKNOWN", f"Room alias {alias} already exists")

    async def get_alias(self, alias: str) -> dict[str, Any]:
        if not identifiers.is_valid_room_alias(alias):
            raise MatrixError(400, "M_INVALID_PARAM", f"Invalid room alias {alias!r}")
        row = await self.db.run(lambda c: rooms_store.get_alias(c, alias))
        if row is None:
            raise not_found(f"Room alias {alias} not found")
        return {"room_id": row["room_id"], "servers": [self.server_name]}

    async def delete_alias(self, requester: Requester, alias: str) -> None:
        row = await self.db.run(lambda c: rooms_store.get_alias(c, alias))
        if row is None:
            raise not_found(f"Room alias {alias} not found")
        if row["creator"] != requester.user_id and not requester.is_admin:
            raise forbidden("Only the alias's creator or an admin may delete it")
        await self.db.run(lambda c: rooms_store.delete_alias(c, alias))

    async def room_aliases(self, requester: Requester, room_id: str) -> list[str]:
        """The local aliases of a room, for those who may read it (spec: 403 otherwise)."""
        await self.reads.state_event(requester, room_id, "m.room.create", "")
        return await self.db.run(lambda c: rooms_store.get_aliases_for_room(c, room_id))


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
    def parse(cls, body: dict[str, Any], default_version: str) -> _CreateRequest:
        req = cls()
        req.room_version = _opt(body, "room_version", str) or default_version
        if req.room_version not in KNOWN_ROOM_VERSIONS:
            raise MatrixError(
                400, "M_UNSUPPORTED_ROOM_VERSION",
                f"Room version {req.room_version!r} is not supported; "
                f"choose one of {sorted(KNOWN_ROOM_VERSIONS)}",
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
            raise MatrixError(400, "M_INVALID_PARAM", "invite must be a list of user IDs")
        req.invite = list(dict.fromkeys(invite))
        req.creation_content = _opt(body, "creation_content", dict) or {}
        req.power_level_override = _opt(body, "power_level_content_override", dict) or {}
        for item in _opt(body, "initial_state", list) or []:
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
