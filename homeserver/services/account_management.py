"""Account management (spec "Account management"): changing the password and deactivating
the account, both behind User-Interactive Authentication.

Both endpoints may be called without an access token (the spec lists no security
requirement); the password stage then names the account. Deactivation is permanent: the
account row stays (so the name can never be registered again), every device and token dies,
and the user leaves, rejects or withdraws from every room through the room engine like any
leave, so the rooms' other members see it.

With `erase` (spec: "the server should erase all information about the account", "a best
effort attempt"), everything about the user that is not an event goes too: profile, account
data, keys, backups, push settings and the rest (storage/erasure.py lists every table) and
the media they uploaded. Their events stay, signed; readers who were not joined when one was
sent get it redacted (services/event_views.py, federation/room_reads.py). The leave events
carry no displayname or avatar: the profile is cleared before they are sent.
"""

from __future__ import annotations

import logging

from homeserver.errors import MatrixError
from homeserver.services.accounts import AccountsService
from homeserver.services.media import MediaService
from homeserver.services.passwords import check_new_password
from homeserver.services.requester import Requester
from homeserver.services.rooms.local import LocalEvents
from homeserver.services.uia import UiaRequest, UserInteractiveAuth
from storage import erasure as erasure_store
from storage import state as state_store
from storage.database import Database

log = logging.getLogger(__name__)

# Memberships a deactivated user gives up: a leave from a join, invite or knock.
ACTIVE_MEMBERSHIPS = ("join", "invite", "knock")


class AccountManagementService:
    def __init__(
        self, db: Database, accounts: AccountsService, uia: UserInteractiveAuth,
        engine: LocalEvents, media: MediaService,
    ) -> None:
        self._db = db
        self._media = media
        self._accounts = accounts
        self._uia = uia
        self._engine = engine

    async def change_password(
        self, requester: Requester | None, new_password: str, logout_devices: bool,
        request: UiaRequest,
    ) -> None:
        """Set a new password; with `logout_devices`, every other device is logged out (the
        requester's own session survives, as the spec asks)."""
        check_new_password(new_password)
        user_id = await self._uia.authenticate(request, _user_of(requester))
        await self._accounts.set_password(user_id, new_password)
        if logout_devices:
            keep = requester.device_id if requester is not None else None
            await self._accounts.delete_other_devices(user_id, keep)

    async def deactivate(
        self, requester: Requester | None, request: UiaRequest, *, erase: bool = False
    ) -> None:
        """Deactivate (and with `erase`, erase) the requester's account after UIA; an
        application service deactivates the user it acts as without (it holds its users'
        accounts, as in Synapse)."""
        if requester is not None:
            user_id = await self._uia.authenticate_requester(request, requester)
        else:
            user_id = await self._uia.authenticate(request, None)
        await self.deactivate_account(user_id, erase=erase)

    async def deactivate_account(self, user_id: str, *, erase: bool = False) -> None:
        """Deactivate `user_id` (whoever asked has been checked): no more devices or tokens,
        out of every room; `erase` also marks it erased and deletes its data and media."""
        await self._accounts.deactivate(user_id, erase=erase)
        if erase:
            media_ids = await self._db.run(
                lambda conn: erasure_store.get_user_media(conn, user_id)
            )
            await self._media.delete_local_media(media_ids)
        await self._leave_rooms(user_id)

    async def _leave_rooms(self, user_id: str) -> None:
        """Leave every room, straight through the engine: a user in many rooms must not be
        stopped half-way by the per-user rate limit that guards client-initiated events."""
        rows = await self._db.run(
            lambda conn: state_store.get_rooms_for_user(conn, user_id, ACTIVE_MEMBERSHIPS)
        )
        for row in rows:
            try:
                await self._engine.send(
                    row["room_id"], user_id, "m.room.member", {"membership": "leave"},
                    state_key=user_id,
                )
            except MatrixError as e:
                # The auth rules may refuse (e.g. a knock in a room that since changed);
                # the account is deactivated either way.
                log.warning("deactivated %s could not leave %s: %s", user_id, row["room_id"], e)


def _user_of(requester: Requester | None) -> str | None:
    return requester.user_id if requester is not None else None
