"""Server notices (spec module "Server Notices"; Synapse's `send_server_notice` admin API):
messages from the server to one local user, in a room of their own.

Theory of operation. The notices user (`server_notices.localpart`, registered as a local user
without a password on first use) creates one notices room per user, private and with
`users_default: -10` so that only it may post (as Synapse), names it "Server Notices", and tags
it `m.server_notice` in the user's account data, which is how clients recognise it. Each
notice first makes sure the user is invited or joined: a user who left is invited again to
the same room, so there stays exactly one notices room per user, as the spec asks. Rejecting
the invitation is refused with M_CANNOT_LEAVE_SERVER_NOTICE_ROOM (the spec's "must"); leaving
after joining is allowed. Notices go through the room engine like any event, with the admin's
transaction ID for idempotency. Getting or creating the room is serialized in this process
(notices are rare), so two notices at once never make two rooms.
"""

from __future__ import annotations

import asyncio
from typing import Any

from homeserver.config import Config
from homeserver.errors import MatrixError, invalid_param, not_found
from homeserver.protocol import identifiers
from homeserver.services.accounts import AccountsService
from homeserver.services.profiles import member_content
from homeserver.services.room_operations import RoomsService
from homeserver.services.tags import TagsService
from storage import accounts as accounts_store
from storage import server_notices as store
from storage import state as state_store
from storage.database import Database
from storage.rooms import ClientTxnKey

NOTICE_TAG = "m.server_notice"
ROOM_NAME = "Server Notices"


class ServerNotices:
    def __init__(
        self, db: Database, config: Config, accounts: AccountsService, rooms: RoomsService,
        tags: TagsService,
    ) -> None:
        self._db = db
        self._accounts = accounts
        self._rooms = rooms
        self._tags = tags
        self._server_name = config.server.server_name
        localpart = config.server_notices.localpart
        self._localpart = localpart
        self.sender = None if localpart is None else f"@{localpart}:{self._server_name}"
        self._room_lock = asyncio.Lock()

    async def send(
        self, user_id: str, event_type: str, content: dict[str, Any], state_key: str | None,
        txn: ClientTxnKey | None,
    ) -> str:
        """Send a notice to a local user; the event's ID."""
        if self.sender is None:
            raise MatrixError(400, "M_UNKNOWN", "Server notices are not enabled on this server")
        if not identifiers.is_valid_user_id(user_id):
            raise invalid_param(f"Invalid user ID {user_id!r}")
        if identifiers.server_name_of(user_id) != self._server_name:
            raise MatrixError(400, "M_UNKNOWN", "Server notices can only be sent to local users")
        if event_type == "m.room.member":
            raise invalid_param("A server notice cannot be a membership event")
        if await self._db.run(lambda conn: accounts_store.get_user(conn, user_id)) is None:
            raise not_found("User not found")
        async with self._room_lock:
            room_id = await self._notices_room(user_id, self.sender)
        return await self._rooms.local.send(
            room_id, self.sender, event_type, content, state_key=state_key, txn=txn
        )

    async def check_leave(self, user_id: str, room_id: str) -> None:
        """Refuse `user_id`'s rejection of the invitation to their notices room."""
        if self.sender is None:
            return

        async def invited_to_notices_room(conn: Any) -> bool:
            if await store.get_notices_room(conn, user_id) != room_id:
                return False
            row = await state_store.get_membership(conn, room_id, user_id)
            return row is not None and row["membership"] == "invite"

        if await self._db.run(invited_to_notices_room):
            raise MatrixError(
                403, "M_CANNOT_LEAVE_SERVER_NOTICE_ROOM",
                "You cannot reject the invitation to the server notices room",
            )

    async def _notices_room(self, user_id: str, sender: str) -> str:
        """The user's notices room, created if need be, with the user invited or joined and
        the room tagged for them."""
        async def current(conn: Any) -> tuple[str | None, str | None, str | None]:
            room_id = await store.get_notices_room(conn, user_id)
            if room_id is None:
                return None, None, None
            ours = await state_store.get_membership(conn, room_id, sender)
            theirs = await state_store.get_membership(conn, room_id, user_id)
            return (
                room_id, None if ours is None else ours["membership"],
                None if theirs is None else theirs["membership"],
            )

        room_id, ours, theirs = await self._db.run(current)
        if room_id is None or ours != "join":  # none yet, or the notices user lost it
            room_id = await self._create_room(user_id, sender)
            theirs = None
        if theirs not in ("invite", "join"):
            profile = await self._accounts.profiles.get_profile(user_id)
            await self._rooms.local.send(
                room_id, sender, "m.room.member", member_content(profile, "invite"),
                state_key=user_id,
            )
        if NOTICE_TAG not in await self._tags.get_tags(user_id, room_id):
            await self._tags.set_tag(user_id, room_id, NOTICE_TAG, {})
        return room_id

    async def _create_room(self, user_id: str, sender: str) -> str:
        assert self._localpart is not None
        try:
            await self._accounts.create_user(self._localpart, None)
        except MatrixError as e:
            if e.errcode != "M_USER_IN_USE":
                raise
        room_id = await self._rooms.creation.create_room(sender, {
            "preset": "private_chat", "name": ROOM_NAME,
            "power_level_content_override": {"users_default": -10},
        })
        await self._db.run(lambda conn: store.upsert_notices_room(conn, user_id, room_id))
        return room_id
