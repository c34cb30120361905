"""Room operations a client asks for: create, membership, sending, aliases.

Each turns a request into one or more events for the room engine; the engine alone decides
whether an event is allowed. What is checked here is only what the auth rules cannot know
(aliases, kick/unban targets, redaction ownership). createRoom itself is built by
`room_creation`; this service is its entry point.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg

from homeserver.config import Config
from homeserver.errors import MatrixError, forbidden, invalid_param, not_found
from homeserver.protocol import identifiers
from homeserver.protocol.events import membership_servers
from homeserver.protocol.power_levels import required_level, user_power_level
from homeserver.protocol.relations import THREAD, may_start_thread, relation_of
from homeserver.protocol.restricted_joins import AUTHORISER
from homeserver.protocol.state_keys import CREATE, POWER_LEVELS
from homeserver.services.canonical_alias import CANONICAL_ALIAS, added_aliases
from homeserver.services.clock import Clock
from homeserver.services.join_authorisation import authorise_join, guests_may_join
from homeserver.services.outward import Outward
from homeserver.services.profiles import member_content
from homeserver.services.quotas import over_quota
from homeserver.services.ratelimit import RateLimiter
from homeserver.services.requester import Requester
from homeserver.services.room_admins import is_room_admin
from homeserver.services.room_creation import RoomCreation
from homeserver.services.room_reads import RoomReads
from homeserver.services.rooms.cache import RoomCache
from homeserver.services.rooms.local import LocalEvents
from storage import blocked_rooms
from storage import events as events_store
from storage import rooms as rooms_store
from storage import state as state_store
from storage.database import Database
from storage.rooms import ClientTxnKey

if TYPE_CHECKING:
    from homeserver.services.accounts import AccountsService

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
        self, db: Database, config: Config, engine: RoomCache, local: LocalEvents,
        accounts: AccountsService, ratelimiter: RateLimiter, outward: Outward, clock: Clock,
    ) -> None:
        self.db = db
        self.engine = engine
        self.local = local
        self.accounts = accounts
        self.ratelimiter = ratelimiter
        self.server_name = config.server.server_name
        self.max_aliases = config.quotas.max_aliases_per_user
        self.reads = RoomReads(db, engine, local.writes.stream, outward.history, clock)
        self.remote = outward.queries  # other servers' aliases are asked of them
        self.remote_rooms = outward.rooms
        # How many other servers a user may invite from.
        self.server_limits = outward.server_limits
        self.creation = RoomCreation(
            db, config, local, self._member_content, self._put_alias, self._invite_remote,
            self.server_limits,
        )
        # Called with (user ID, room ID) once a user's join through `join` is done (room
        # upgrades carry the user's tags and push rules into a successor room).
        self.on_join: list[Callable[[str, str], Awaitable[None]]] = []
        # Asked whether a local alias the directory lacks exists after all (the appservices
        # whose namespace covers it, which create it before saying yes); app.py plugs it in.
        self.ask_unknown_alias: Callable[[str], Awaitable[bool]] | None = None
        # Called with a room ID after one of its aliases was created or deleted.
        self.on_aliases_changed: list[Callable[[str], None]] = []
        # Asked with (user ID, room ID) before a user leaves a room or rejects an invitation
        # on their own; may refuse (server notices: the invitation to the notices room).
        self.leave_checks: list[Callable[[str, str], Awaitable[None]]] = []

    async def create_room(self, requester: Requester, body: dict[str, Any]) -> str:
        """Spec createRoom (see room_creation); rate limited like any event a user sends."""
        self.ratelimiter.check_user("per_user", requester)
        alias_name = body.get("room_alias_name")
        if isinstance(alias_name, str):
            self.accounts.appservice_users.check_alias(
                requester.appservice, f"#{alias_name}:{self.server_name}"
            )
        return await self.creation.create_room(requester.user_id, body)

    async def _member_content(self, user_id: str, membership: str) -> dict[str, Any]:
        """Member event content with the user's profile, if this server knows it."""
        profile: dict[str, Any] = {}
        if identifiers.server_name_of(user_id) == self.server_name:
            try:
                profile = await self.accounts.profiles.get_profile(user_id)
            except MatrixError:
                pass
        return member_content(profile, membership)

    # ---- membership -------------------------------------------------------------------------

    async def resolve_room(self, room_id_or_alias: str) -> str:
        if room_id_or_alias.startswith("#"):
            row = await self._alias_row(room_id_or_alias)
            if row is None:
                raise not_found(f"Room alias {room_id_or_alias} not found")
            room_id: str = row["room_id"]
            return room_id
        if not identifiers.is_valid_room_id(room_id_or_alias):
            raise invalid_param(f"Invalid room ID {room_id_or_alias!r}")
        return room_id_or_alias

    async def join(
        self, requester: Requester, room_id_or_alias: str, extra: Mapping[str, Any],
        servers: Sequence[str] = (),
    ) -> str:
        """Join a room: through our own copy of it when this server is in it, else through
        the servers named (`via`), those the alias lists, and the room ID's own server.
        `extra` is what the client asks to have in its member event besides the membership
        (a `reason`, its own keys, a per-room display name over the profile's)."""
        room_id, candidates = await self.target(room_id_or_alias, servers)
        content = {
            **await self._member_content(requester.user_id, "join"),
            **{k: v for k, v in extra.items() if k != AUTHORISER},
            "membership": "join",
        }
        await self._join(requester, room_id, content, candidates)
        for hook in self.on_join:
            await hook(requester.user_id, room_id)
        return room_id

    async def knock(
        self, requester: Requester, room_id_or_alias: str, reason: str | None,
        servers: Sequence[str] = (),
    ) -> str:
        """Knock on a room: a knock event through the same engine and auth rules as every
        membership (the room's join rule must allow knocking) when this server is in the
        room, else through another server (make_knock/send_knock) found as for a join."""
        room_id, candidates = await self.target(room_id_or_alias, servers)
        await self.refuse_blocked(room_id)
        content = await self._member_content(requester.user_id, "knock")
        if reason is not None:
            content["reason"] = reason
        if await self._resident(room_id):
            await self._membership(requester, room_id, requester.user_id, content)
        elif self.remote_rooms.federates:
            self.ratelimiter.check_user("per_user", requester)
            candidates += await self._remote_candidates(room_id, requester.user_id)
            await self.remote_rooms.knock_remote(
                room_id, requester.user_id, content, candidates
            )
        else:
            raise not_found("This server can only knock on rooms it is in")
        return room_id

    async def target(
        self, room_id_or_alias: str, servers: Sequence[str]
    ) -> tuple[str, list[str]]:
        """The room a join, knock or room summary names, and the servers the client named
        (`via`) with, for another server's alias, those the alias lists."""
        candidates = list(servers)
        if room_id_or_alias.startswith("#") and not identifiers.is_valid_room_alias(
            room_id_or_alias
        ):
            raise invalid_param(f"Invalid room alias {room_id_or_alias!r}")
        if room_id_or_alias.startswith("#") and (
            identifiers.server_name_of(room_id_or_alias) != self.server_name
        ):
            found = await self.get_alias(room_id_or_alias)
            candidates += [str(s) for s in found.get("servers", [])]
            return str(found["room_id"]), candidates
        return await self.resolve_room(room_id_or_alias), candidates

    async def _remote_candidates(self, room_id: str, user_id: str) -> list[str]:
        """Servers besides the client's to ask for a room this server is not in: those the
        user's membership points to, those of the room's members when this server last was in
        it, and (pre-v12 room IDs) the server that created the room."""
        candidates = await self._membership_servers(room_id, user_id)
        candidates += await self._last_known_servers(room_id)
        if ":" in room_id:  # pre-v12 room IDs name the server that created the room
            candidates.append(identifiers.server_name_of(room_id))
        return candidates

    async def _join(
        self, requester: Requester, room_id: str, content: dict[str, Any],
        candidates: list[str],
    ) -> str | None:
        """The requester's join with `content`; its event ID when this server built it (None
        when another server's make_join/send_join did). For a restricted room this server
        names the authoriser itself, when the requester qualifies through the join rule.
        A guest joins only rooms whose `m.room.guest_access` is `can_join`."""
        await self.refuse_blocked(room_id)
        if requester.is_guest and not await self.db.run(
            lambda c: guests_may_join(c, self.engine, room_id)
        ):
            raise forbidden("This room does not allow guests to join")
        if self.remote_rooms.federates and not await self._resident(room_id):
            self.ratelimiter.check_user("per_user", requester)
            candidates += await self._remote_candidates(room_id, requester.user_id)
            await self.remote_rooms.join_remote(
                room_id, requester.user_id, content, candidates
            )
            return None
        verdict = await self.db.run(
            lambda c: authorise_join(c, self.engine, room_id, requester.user_id)
        )
        if verdict.needed and not verdict.qualifies:
            raise forbidden("You are in none of the rooms this room's join rule allows")
        if verdict.needed and verdict.authoriser is None:
            if not self.remote_rooms.federates or not verdict.other_servers:
                raise forbidden("No user in the room may authorise joining it")
            # As Synapse: a server whose users may invite authorises it (make_join).
            self.ratelimiter.check_user("per_user", requester)
            await self.remote_rooms.join_remote(
                room_id, requester.user_id, content, list(verdict.other_servers)
            )
            return None
        if verdict.authoriser is not None:
            content = {**content, AUTHORISER: verdict.authoriser}
        return await self._membership(requester, room_id, requester.user_id, content)

    async def update_membership(
        self, requester: Requester, room_id: str, target: str, content: dict[str, Any]
    ) -> str:
        """A member event a client sends as state (`PUT /rooms/{id}/state/m.room.member/
        {userId}`), taken through the same paths and checks as the membership endpoints (as
        Synapse does), with the client's content kept (a per-room display name, a reason).
        `join_authorised_via_users_server` is only ever this server's to name: a client's is
        dropped. Returns the member event's ID."""
        if not identifiers.is_valid_user_id(target):
            raise invalid_param(f"Invalid user ID {target!r}")
        content = {k: v for k, v in content.items() if k != AUTHORISER}
        membership = content.get("membership")
        event_id: str | None
        if membership == "join":
            if target != requester.user_id:
                raise forbidden("Cannot join on behalf of another user")
            event_id = await self._join(requester, room_id, content, [])
        elif membership in ("invite", "ban"):
            event_id = await self.set_membership(
                requester, room_id, target, str(membership), None, content=content
            )
        elif membership == "leave":
            action = await self._leave_action(requester, room_id, target)
            event_id = await self.set_membership(
                requester, room_id, target, action, None, content=content
            )
        else:  # a knock (no endpoint of its own here) or no membership: the rules decide
            event_id = await self._membership(requester, room_id, target, content)
        return event_id or await self._member_event_id(room_id, target)

    async def _leave_action(self, requester: Requester, room_id: str, target: str) -> str:
        """Which endpoint a `leave` of `target` stands for: leave, unban or kick."""
        if target == requester.user_id:
            return "leave"
        row = await self.db.run(lambda c: state_store.get_membership(c, room_id, target))
        return "unban" if row is not None and row["membership"] == "ban" else "kick"

    async def _member_event_id(self, room_id: str, user_id: str) -> str:
        """The user's current member event (one another server made for us)."""
        row = await self.db.run(lambda c: state_store.get_membership(c, room_id, user_id))
        if row is None:
            raise not_found(f"No membership of {user_id} in {room_id}")
        return str(row["event_id"])

    async def _membership_servers(self, room_id: str, user_id: str) -> list[str]:
        """The servers the user's membership event points to (`membership_servers`)."""
        async def read(conn: Any) -> list[str]:
            row = await state_store.get_membership(conn, room_id, user_id)
            if row is None:
                return []
            pdu = (await self.engine.get_pdus(conn, [row["event_id"]])).get(row["event_id"], {})
            return membership_servers(pdu)

        servers: list[str] = await self.db.run(read)
        return servers

    async def _last_known_servers(self, room_id: str) -> list[str]:
        """The servers of the members a room had when this server last was in it (a room
        whose last local member left, joined again)."""
        async def read(conn: Any) -> set[str]:
            if await rooms_store.get_room_version(conn, room_id) is None:
                return set()
            members = await self.engine.joined_members(conn, room_id)
            return {identifiers.server_name_of(m) for m in members}

        return sorted(await self.db.run(read))

    async def _resident(self, room_id: str) -> bool:
        """Whether this server is in the room: it knows it and one of its users is joined."""
        async def read(conn: Any) -> bool:
            if await rooms_store.get_room_version(conn, room_id) is None:
                return False
            members = await self.engine.joined_members(conn, room_id)
            return any(identifiers.server_name_of(m) == self.server_name for m in members)

        resident: bool = await self.db.run(read)
        return resident

    async def set_membership(
        self, requester: Requester, room_id: str, target: str, action: str,
        reason: str | None, *, content: dict[str, Any] | None = None,
    ) -> str | None:
        """invite, leave (own), kick, ban or unban `target` (an action of `MEMBERSHIP_ACTIONS`),
        with `content` when the client gave the whole event (else the server makes it); the
        event's ID when this server built it (None when it went through another server).

        The auth rules allow a kick of someone not in the room and an unban of someone not
        banned; the spec's endpoints refuse both with 403, so that is checked here.
        """
        if not identifiers.is_valid_user_id(target):
            raise invalid_param(f"Invalid user ID {target!r}")
        membership, required = MEMBERSHIP_ACTIONS[action]
        if membership == "leave" and target == requester.user_id:
            for check in self.leave_checks:
                await check(target, room_id)
        if required:
            async def current(conn: Any) -> str | None:
                await self.engine.room_version(conn, room_id)  # 404 for unknown rooms
                row = await state_store.get_membership(conn, room_id, target)
                return None if row is None else str(row["membership"])
            if await self.db.run(current) not in required:
                raise forbidden(f"Cannot {action} {target}: their membership does not allow it")
        if membership == "invite":
            await self.refuse_blocked(room_id)
        if content is None and membership == "invite":
            content = await self._member_content(target, "invite")
        content = {**(content or {}), "membership": membership}
        if reason is not None:
            content["reason"] = reason
        if self.remote_rooms.federates and await self._through_federation(
            requester, room_id, target, content
        ):
            return None
        return await self._membership(requester, room_id, target, content)

    async def refuse_blocked(self, room_id: str) -> None:
        """403 for a room a server admin blocked (the admin API's room block): this server's
        users neither join it nor are invited into it."""
        if await self.db.run(lambda c: blocked_rooms.get_blocker(c, room_id)) is not None:
            raise forbidden("This room has been blocked on this server")

    async def _through_federation(
        self, requester: Requester, room_id: str, target: str, content: dict[str, Any]
    ) -> bool:
        """Invites of other servers' users, and our users' leaves of rooms this server is not
        in (rejecting a remote invite), go through the other server; True when done so."""
        membership = content["membership"]
        if membership == "invite" and identifiers.server_name_of(target) != self.server_name:
            self.ratelimiter.check_user("per_user", requester)
            await self.server_limits.admit(requester.user_id, [identifiers.server_name_of(target)])
            return await self._invite_remote(room_id, requester.user_id, target, content)
        if membership != "leave" or target != requester.user_id or await self._resident(room_id):
            return False

        # An inviter of ours means the room's state is here (everyone may have left it since):
        # the engine makes the leave. Otherwise the inviting server does (or, when it cannot,
        # this server alone: see `RemoteRooms.leave_remote`).
        candidates = [
            s for s in await self._membership_servers(room_id, target) if s != self.server_name
        ]
        if not candidates:
            return False
        self.ratelimiter.check_user("per_user", requester)
        await self.remote_rooms.leave_remote(room_id, target, candidates)
        return True

    async def _invite_remote(
        self, room_id: str, inviter: str, invitee: str, content: dict[str, Any]
    ) -> bool:
        """Invite a user of another server through the invite handshake (their server
        countersigns first); False when the invitee is ours, or there is no federation, and
        the invite is a plain event of this server."""
        if not self.remote_rooms.federates or (
            identifiers.server_name_of(invitee) == self.server_name
        ):
            return False
        await self.remote_rooms.invite_remote(room_id, inviter, invitee, content)
        return True

    async def _membership(
        self, requester: Requester, room_id: str, target: str, content: dict[str, Any]
    ) -> str:
        self.ratelimiter.check_user("per_user", requester)
        return await self.local.send(
            room_id, requester.user_id, "m.room.member", content, state_key=target
        )

    async def forget(self, requester: Requester, room_id: str) -> None:
        async def run(conn: Any) -> None:
            row = await state_store.get_membership(conn, room_id, requester.user_id)
            if row is not None and row["membership"] in ("join", "invite", "knock"):
                raise MatrixError(400, "M_UNKNOWN", "Leave the room before forgetting it")
            await state_store.forget_room(conn, room_id, requester.user_id)
        await self.db.transaction(run, name="forget_room")
        self.engine.memberships_changed(requester.user_id)

    async def joined_rooms(self, requester: Requester) -> list[str]:
        return await self.joined_rooms_of(requester.user_id)

    async def joined_rooms_of(self, user_id: str) -> list[str]:
        """The rooms `user_id` (of any server) is joined to, as far as this server knows."""
        rows = await self.db.run(lambda c: state_store.get_rooms_for_user(c, user_id, ["join"]))
        return sorted(r["room_id"] for r in rows)

    async def mutual_rooms(self, requester: Requester, user_id: str) -> list[str]:
        """The rooms the requester and `user_id` are both joined to (none for a user who
        doesn't exist, as the spec asks)."""
        return await self.db.run(
            lambda c: state_store.get_mutual_rooms(c, requester.user_id, user_id)
        )

    # ---- sending ------------------------------------------------------------------------------

    async def send_event(
        self, requester: Requester, room_id: str, event_type: str, content: dict[str, Any],
        *, state_key: str | None = None, txn_id: str | None = None,
        origin_server_ts: int | None = None,
    ) -> str:
        """`origin_server_ts`: an application service's own time for the event (`?ts=`);
        membership changes take the server's."""
        if event_type == "m.room.member" and state_key is not None:
            return await self.update_membership(requester, room_id, state_key, content)
        self.ratelimiter.check_user("per_user", requester)
        if state_key is None and event_type == "m.room.redaction":
            raise forbidden("Redactions are sent with the /redact endpoint")
        if state_key is not None and event_type == CANONICAL_ALIAS:
            await self._check_canonical_alias(requester.user_id, room_id, state_key, content)
        relation = relation_of(content)
        if relation is not None and relation[0] == THREAD:
            await self._check_thread_root(room_id, relation[1])
        txn = None
        if txn_id is not None:
            scope = f"send/{room_id}/{event_type}"
            txn = ClientTxnKey(requester.user_id, requester.device_id, txn_id, scope)
        return await self.local.send(
            room_id, requester.user_id, event_type, content, state_key=state_key, txn=txn,
            origin_server_ts=origin_server_ts,
        )

    async def _check_thread_root(self, room_id: str, root_id: str) -> None:
        """400 M_UNKNOWN for a thread off an event that relates to another (threading.md
        "Validation of `m.thread` relationships"), so threads never nest. A root this server
        doesn't know is let through, as one of another room would be: the relation then
        simply never shows."""
        async def root_content(conn: Any) -> dict[str, Any] | None:
            stored = (await events_store.get_events(conn, [root_id])).get(root_id)
            if stored is None or stored.room_id != room_id:
                return None
            pdus = await self.engine.get_pdus(conn, [root_id])
            return pdus[root_id]["content"] if root_id in pdus else None

        content = await self.db.run(root_content)
        if content is not None and not may_start_thread(content):
            raise MatrixError(
                400, "M_UNKNOWN", "Cannot start a thread from an event with a relation"
            )

    async def _check_canonical_alias(
        self, requester_id: str, room_id: str, state_key: str, content: dict[str, Any]
    ) -> None:
        """400 M_BAD_ALIAS unless every alias the event adds points to the room now (another
        server's alias is asked of that server, as `GET /directory/room` does). Checked only
        for who may send the event: anyone else learns nothing of the aliases, and gets the
        room engine's refusal."""
        async def current(conn: Any) -> tuple[bool, dict[str, Any] | None]:
            if not await is_room_admin(conn, self.engine, room_id, requester_id):
                return False, None
            ids = await state_store.get_current_state_for_keys(
                conn, room_id, [(CANONICAL_ALIAS, state_key)]
            )
            pdus = await self.engine.get_pdus(conn, list(ids.values()))
            return True, next((p["content"] for p in pdus.values()), None)

        may_send, previous = await self.db.run(current)
        if not may_send:
            return
        for alias in added_aliases(content, previous):
            try:
                found = await self.get_alias(alias)
            except MatrixError as e:
                if e.errcode != "M_NOT_FOUND":
                    raise
                found = {}
            if found.get("room_id") != room_id:
                raise MatrixError(
                    400, "M_BAD_ALIAS", f"The alias {alias} does not point to this room"
                )

    async def redact(
        self, requester: Requester, room_id: str, event_id: str, reason: str | None,
        txn_id: str,
    ) -> str:
        """Redact an event: allowed for its sender, or for users with the `redact` level.
        Only a member may ask (the auth rules would refuse anyone else's redaction), so that
        nobody else learns from the answer whether an event exists."""
        self.ratelimiter.check_user("per_user", requester)

        async def check(conn: Any) -> dict[str, Any]:
            version = await self.engine.room_version(conn, room_id)
            member = await state_store.get_membership(conn, room_id, requester.user_id)
            if member is None or member["membership"] != "join":
                raise forbidden(f"You are not joined to {room_id}")
            stored = (await events_store.get_events(conn, [event_id])).get(event_id)
            if stored is None:
                raise not_found("Event not found")
            if stored.room_id != room_id:
                # Synapse's answer (Sytest "PUT /redact disallows redaction of event in
                # different room"): a redaction never names an event of another room.
                raise MatrixError(400, "M_UNKNOWN", "Cannot redact an event of another room")
            target = (await self.engine.get_pdus(conn, [event_id]))[event_id]
            return {"version": version, "target": target}

        found = await self.db.run(check)
        version, target = found["version"], found["target"]
        if target["sender"] != requester.user_id:
            await self._require_redact_power(requester.user_id, room_id, version)
        content: dict[str, Any] = {} if reason is None else {"reason": reason}
        txn = ClientTxnKey(
            requester.user_id, requester.device_id, txn_id, f"redact/{room_id}/{event_id}"
        )
        return await self.local.send(
            room_id, requester.user_id, "m.room.redaction", content, txn=txn, redacts=event_id
        )

    async def _require_redact_power(self, user_id: str, room_id: str, version: Any) -> None:
        async def levels(conn: Any) -> tuple[dict[str, Any] | None, dict[str, Any]]:
            state = await state_store.get_current_state(
                conn, room_id, ["m.room.power_levels", "m.room.create"]
            )
            pdus = await self.engine.get_pdus(conn, list(state.values()))
            pl = pdus.get(state.get(POWER_LEVELS, ""))
            create = pdus[state[CREATE]]
            return (pl["content"] if pl else None), create

        pl_content, create = await self.db.run(levels)
        if user_power_level(user_id, pl_content, create, version) < required_level(
            pl_content, "redact"
        ):
            raise forbidden("You may only redact your own events")

    # ---- aliases ------------------------------------------------------------------------------

    async def put_alias(self, requester: Requester, alias: str, room_id: str) -> None:
        """Point a new alias of this server at a room the requester is joined to.

        The spec leaves who may do so to the server; like Synapse (its default
        `require_membership_for_aliases`), only the room's joined members may, and server
        admins without being in the room. No power level is asked for: the directory is not
        room state, and publishing an alias in the room is `m.room.canonical_alias`, which
        the power levels guard. An application service creates aliases in its namespaces
        only, without being in the room; nobody else may in its exclusive ones."""
        if not identifiers.is_valid_room_alias(alias):
            raise invalid_param(f"Invalid room alias {alias!r}")
        if identifiers.server_name_of(alias) != self.server_name:
            raise invalid_param("Aliases must be on this server")
        self.accounts.appservice_users.check_alias(requester.appservice, alias)

        async def membership(conn: Any) -> str | None:
            await self.engine.room_version(conn, room_id)  # 404 for unknown rooms
            row = await state_store.get_membership(conn, room_id, requester.user_id)
            return None if row is None else str(row["membership"])

        in_room = await self.db.run(membership) == "join"
        if not in_room and not requester.is_admin and requester.appservice is None:
            raise forbidden("You must be in the room to create an alias for it")
        await self._put_alias(alias, room_id, requester.user_id)

    async def _put_alias(self, alias: str, room_id: str, creator: str) -> None:
        """Create an alias; a user holds at most `quotas.max_aliases_per_user` of them."""

        async def insert(conn: asyncpg.Connection) -> bool:
            if await rooms_store.count_aliases_by_creator(conn, creator) >= self.max_aliases:
                raise over_quota("room aliases per user", self.max_aliases)
            return await rooms_store.insert_alias(conn, alias, room_id, creator)

        created = await self.db.transaction(insert, name="put_alias")
        if not created:
            raise MatrixError(409, "M_UNKNOWN", f"Room alias {alias} already exists")
        self.aliases_changed(room_id)

    def aliases_changed(self, room_id: str) -> None:
        """Tell the hooks that the room's aliases changed (here, or by a room shutdown)."""
        for hook in self.on_aliases_changed:
            hook(room_id)

    async def _alias_row(self, alias: str) -> asyncpg.Record | None:
        """The directory's row of an alias; for a local alias it lacks, the appservices
        covering it are asked first (application-service-api "Querying")."""
        row = await self.db.run(lambda c: rooms_store.get_alias(c, alias))
        if (
            row is None and self.ask_unknown_alias is not None
            and identifiers.server_name_of(alias) == self.server_name
            and await self.ask_unknown_alias(alias)
        ):
            row = await self.db.run(lambda c: rooms_store.get_alias(c, alias))
        return row

    async def get_alias(self, alias: str) -> dict[str, Any]:
        """{room_id, servers} of an alias; another server's is asked of that server."""
        if not identifiers.is_valid_room_alias(alias):
            raise invalid_param(f"Invalid room alias {alias!r}")
        if identifiers.server_name_of(alias) != self.server_name:
            return await self.remote.room_alias(alias)
        return await self.local_alias(alias)

    async def local_alias(self, alias: str) -> dict[str, Any]:
        """{room_id, servers} of an alias in this server's directory: this server first, then
        the servers of the room's joined members (those that can help a remote join)."""
        row = await self._alias_row(alias)
        if row is None:
            raise not_found(f"Room alias {alias} not found")
        room_id: str = row["room_id"]
        members = await self.db.run(lambda conn: self.engine.joined_members(conn, room_id))
        others = {identifiers.server_name_of(m) for m in members} - {self.server_name}
        return {"room_id": room_id, "servers": [self.server_name, *sorted(others)]}

    async def delete_alias(self, requester: Requester, alias: str) -> None:
        """Delete an alias of this server: its creator may, a server admin, and (as in
        Synapse) an admin of the room it points to (`room_admins`), who may unpublish it from
        the room's canonical alias anyway. An application service may delete any alias of its
        namespaces, and only those; nobody else those of its exclusive ones."""
        self.accounts.appservice_users.check_alias(requester.appservice, alias)
        row = await self.db.run(lambda c: rooms_store.get_alias(c, alias))
        if row is None:
            raise not_found(f"Room alias {alias} not found")
        manager = requester.is_admin or requester.appservice is not None
        if row["creator"] != requester.user_id and not manager and not (
            await self.db.run(
                lambda c: is_room_admin(c, self.engine, row["room_id"], requester.user_id)
            )
        ):
            raise forbidden(
                "Only the alias's creator, an admin of its room (who may change the canonical "
                "alias) or a server admin may delete it"
            )
        await self.db.run(lambda c: rooms_store.delete_alias(c, alias))
        self.aliases_changed(row["room_id"])

    async def room_aliases(self, requester: Requester, room_id: str) -> list[str]:
        """The local aliases of a room, for those who may read it (spec: 403 otherwise)."""
        await self.reads.state_event(requester, room_id, *CREATE)
        return await self.db.run(lambda c: rooms_store.get_aliases_for_room(c, room_id))
