"""Registration (spec "Account registration and management") behind User-Interactive
Authentication with the single stage `m.login.dummy`.

Theory of operation. A request without `auth` opens a session (uia.py) bound to
`POST /register` and is answered 401 with the flows. The session remembers the request's
parameters (username, device ID and name, `inhibit_login`, `refresh_token`) and the hash of its
password, never the password itself, so the completing request may carry only `auth`; what a
later request of the session gives overrides what an earlier one gave. The dummy stage proves
nothing: completing it registers. The session then remembers the user it registered, and
completing it again answers that user, logged in afresh (Synapse's `registered_user_id`), so a
client that lost the response does not register twice. Requested usernames are lowercased, as
Synapse does: "Alice" registers @alice, who logs in as "Alice" too.

Guests (`registration.allow_guests`) register without any stage; a guest becomes a full
account through the ordinary flow with its access token as `guest_access_token`, keeping its
user ID.
"""

from __future__ import annotations

from dataclasses import asdict, astuple, dataclass
from functools import partial
from typing import Any

from homeserver.errors import MatrixError
from homeserver.protocol.appservice import Registration
from homeserver.services.accounts import AccountsService, Session, invalid_username
from homeserver.services.uia import AuthRequired, UiaRequest, UiaSession, UserInteractiveAuth
from storage import uia as store
from storage.database import Database

DUMMY_STAGE = "m.login.dummy"
DUMMY_FLOWS = [[DUMMY_STAGE]]


@dataclass(frozen=True, slots=True)
class RegistrationParams:
    """What a /register request asks for; None: not given in this request."""

    username: str | None = None
    device_id: str | None = None
    initial_device_display_name: str | None = None
    inhibit_login: bool | None = None
    refresh_token: bool | None = None
    # The guest account this registration upgrades (its access token was given).
    guest_user_id: str | None = None

    def over(self, earlier: RegistrationParams) -> RegistrationParams:
        """These parameters, completed by those an earlier request of the session gave."""
        return RegistrationParams(*(
            mine if mine is not None else theirs
            for mine, theirs in zip(astuple(self), astuple(earlier), strict=True)
        ))

    def to_json(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_json(cls, stored: dict[str, Any] | None) -> RegistrationParams:
        """Parameters this service stored (so already checked for types)."""
        return cls(**(stored or {}))


class RegistrationService:
    def __init__(self, db: Database, accounts: AccountsService, uia: UserInteractiveAuth) -> None:
        self._db = db
        self._accounts = accounts
        self._uia = uia

    async def register(
        self, given: RegistrationParams, password: str | None, request: UiaRequest
    ) -> Session:
        """Register (or, for a session that already did, log in again), or AuthRequired."""
        auth, ip = request.auth, request.client_ip
        self._accounts.limit_registration(ip)
        session = None
        if auth is not None and auth.session is not None:
            session = await self._uia.resume(auth.session, request)
        stored = RegistrationParams.from_json(None if session is None else session.params)
        params = given.over(stored)
        if session is not None and session.registered_user_id is not None:
            return await self._accounts.login_registered(
                session.registered_user_id, device_id=params.device_id,
                device_display_name=params.initial_device_display_name,
                inhibit_login=bool(params.inhibit_login), ip=ip,
                refresh=bool(params.refresh_token),
            )
        username = None if params.username is None else params.username.lower()
        guest = params.guest_user_id
        if guest is not None:
            # Guest Access: the username, if given, is the guest's own localpart.
            if username is not None and guest != f"@{username}:{self._accounts.server_name}":
                raise invalid_username(f"A guest upgrade keeps the user ID {guest}")
        elif username is not None:
            # The spec wants M_USER_IN_USE / M_INVALID_USERNAME before any stage.
            await self._accounts.check_username_available(username)
        if auth is None or auth.type != DUMMY_STAGE:
            await self._challenge(session, params, password, request)
        password_hash = session.password_hash if session is not None else None
        if password is not None:
            password_hash = await self._accounts.hash_new_password(password, ip)
        create = (
            partial(self._accounts.register, username) if guest is None
            else partial(self._accounts.upgrade_guest, guest)
        )
        registered = await create(
            password_hash, device_id=params.device_id,
            device_display_name=params.initial_device_display_name,
            inhibit_login=bool(params.inhibit_login), ip=ip,
            refresh=bool(params.refresh_token),
        )
        if session is not None:
            session_id, user_id = session.session_id, registered.user_id
            await self._db.run(lambda conn: store.set_registered_user(conn, session_id, user_id))
            await self._uia.complete(session_id, user_id, DUMMY_STAGE, request)
        return registered

    async def register_for_appservice(
        self, registration: Registration, params: RegistrationParams, ip: str
    ) -> Session:
        """`m.login.application_service`: a user of the service's namespaces, without
        authentication stages, password or registration rate limit (spec "Server admin style
        permissions"); the localpart is taken as given, not lowercased."""
        if params.username is None:
            raise MatrixError(400, "M_MISSING_PARAM", "'username' is required")
        user_id = self._accounts.user_id_for_registration(params.username)
        self._accounts.appservice_users.check_user(registration, user_id)
        return await self._accounts.register(
            params.username, None, device_id=params.device_id,
            device_display_name=params.initial_device_display_name,
            inhibit_login=bool(params.inhibit_login), ip=ip, refresh=bool(params.refresh_token),
        )

    async def register_guest(self, device_display_name: str | None, ip: str) -> Session:
        """`kind=guest` (spec "Guest Access"): no authentication stages, a generated user ID,
        and every parameter but the device's display name ignored, as the spec says."""
        self._accounts.limit_registration(ip)
        return await self._accounts.register(
            None, None, device_id=None, device_display_name=device_display_name,
            inhibit_login=False, ip=ip, guest=True,
        )

    async def _challenge(
        self, session: UiaSession | None, params: RegistrationParams, password: str | None,
        request: UiaRequest,
    ) -> None:
        """Remember the request's parameters in its session (opened now if need be) and
        answer 401: the first challenge, or an unsupported stage type."""
        session_id = await self._uia.open(request, None) if session is None else session.session_id
        password_hash = None
        if password is not None and (session is None or session.password_hash is None):
            password_hash = await self._accounts.hash_new_password(password, request.client_ip)
        await self._db.run(
            lambda conn: store.update_registration(
                conn, session_id, params.to_json(), password_hash
            )
        )
        completed = session.completed if session is not None else []
        auth = request.auth
        if auth is None or auth.type is None:
            raise AuthRequired(session_id, completed, flows=DUMMY_FLOWS)
        raise AuthRequired(
            session_id, completed, f"Unsupported authentication type {auth.type!r}",
            "M_UNRECOGNIZED", DUMMY_FLOWS,
        )
