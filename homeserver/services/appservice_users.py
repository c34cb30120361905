"""Application services acting as users (spec "Application Service API", "Client-Server API
Extensions"), and the namespaces they hold exclusively against everyone else.

Theory of operation. A request whose access token is an application service's `as_token`
(`AppServices.by_as_token`, asked only by `AccountsService.authenticate`) acts as the user its
`user_id` query parameter names, which must be a local user of the service's user namespaces
and registered, or, without one, as the service's sender (`@sender_localpart:server`). The
sender needs no registration: its account row is created on its first request, since rooms,
profiles and devices all refer to one. `device_id` (or MSC3202's
`org.matrix.msc3202.device_id`, which the mautrix bridges send) picks one of that user's
devices; without it the request has no device (`NO_DEVICE`).

Exclusive namespaces: nobody but their service may register a user or create an alias in
them (400 M_EXCLUSIVE), and a service may register users and create aliases only in its own
namespaces (400 M_EXCLUSIVE too).
"""

from __future__ import annotations

import asyncpg

from homeserver.errors import MatrixError, forbidden
from homeserver.protocol.appservice import (
    Registration,
    is_interested_in_alias,
    is_interested_in_user,
)
from homeserver.protocol.identifiers import is_valid_user_id
from homeserver.services.appservices import AppServices
from homeserver.services.clock import Clock
from homeserver.services.requester import NO_DEVICE, Requester
from storage import accounts as store
from storage.database import Database


def exclusive(error: str) -> MatrixError:
    return MatrixError(400, "M_EXCLUSIVE", error)


class AppServiceUsers:
    def __init__(self, db: Database, appservices: AppServices, clock: Clock) -> None:
        self._db = db
        self.appservices = appservices
        self._clock = clock
        # Senders whose account row exists (made by `_ensure_sender`, never deleted).
        self._senders_ready: set[str] = set()

    async def requester(
        self, registration: Registration, user_id: str | None, device_id: str | None
    ) -> Requester:
        """Who a request with `registration`'s as_token acts as (identity assertion)."""
        user_id = registration.sender if user_id is None else user_id
        if not is_valid_user_id(user_id) or not is_interested_in_user(registration, user_id):
            raise forbidden(f"The application service cannot act as {user_id!r}")
        if user_id == registration.sender:
            if user_id not in self._senders_ready:
                await self._ensure_sender(registration)
                self._senders_ready.add(user_id)
        else:
            row = await self._db.run(lambda conn: store.get_user(conn, user_id))
            if row is None:
                raise forbidden(f"The application service has not registered {user_id}")
            if row["deactivated"]:
                raise MatrixError(403, "M_USER_DEACTIVATED", f"{user_id} is deactivated")
        if device_id is None:
            return Requester(user_id, NO_DEVICE, appservice=registration)
        device = await self._db.run(lambda conn: store.get_device(conn, user_id, device_id))
        if device is None:
            raise MatrixError(400, "M_UNKNOWN_DEVICE", f"{user_id} has no device {device_id!r}")
        return Requester(user_id, device_id, appservice=registration)

    async def _ensure_sender(self, registration: Registration) -> None:
        """The sender's account row, made on its service's first request if missing."""
        user_id, now = registration.sender, self._clock.now_ms()

        async def txn(conn: asyncpg.Connection) -> None:
            if await store.get_user(conn, user_id) is None and await store.insert_user(
                conn, user_id, None, False, now
            ):
                await store.insert_profile(conn, user_id, registration.sender_localpart)

        await self._db.transaction(txn, name="appservice_sender")

    def check_user(self, registration: Registration | None, user_id: str) -> None:
        """400 M_EXCLUSIVE unless `registration` (None: a user, not a service) may register
        `user_id`: a service only in its user namespaces, and nobody in another service's
        exclusive ones."""
        if registration is not None and not is_interested_in_user(registration, user_id):
            raise exclusive(f"{user_id} is outside the application service's namespaces")
        if self.appservices.exclusive_owner_of_user(user_id, besides=registration) is not None:
            raise exclusive(f"{user_id} is reserved by an application service")

    async def check_login(self, registration: Registration, user_id: str) -> None:
        """`m.login.application_service`: only a registered user of the service's namespaces
        (403 M_EXCLUSIVE outside them, as Synapse answers)."""
        if not is_interested_in_user(registration, user_id):
            raise MatrixError(
                403, "M_EXCLUSIVE", f"{user_id} is outside the application service's namespaces"
            )
        if await self._db.run(lambda conn: store.get_user(conn, user_id)) is None:
            raise forbidden(f"The application service has not registered {user_id}")

    def check_alias(self, registration: Registration | None, alias: str) -> None:
        """`check_user` for creating (or deleting) the room alias `alias`."""
        if registration is not None and not is_interested_in_alias(registration, alias):
            raise exclusive(f"{alias} is outside the application service's namespaces")
        if self.appservices.exclusive_owner_of_alias(alias, besides=registration) is not None:
            raise exclusive(f"{alias} is reserved by an application service")
