"""Registration (spec "Account registration and management") behind User-Interactive
Authentication: the single stage `m.login.dummy`, preceded by `m.login.registration_token` when
`registration.require_token` is on.

Theory of operation. A request without `auth` opens a session (uia.py) bound to
`POST /register` and is answered 401 with the flows. The session remembers the request's
parameters (username, device ID and name, `inhibit_login`, `refresh_token`) and the hash of its
password, never the password itself, so the completing request may carry only `auth`; what a
later request of the session gives overrides what an earlier one gave. Each request passes one
stage, in any order; the one that passes the flow's last stage registers. The dummy stage
proves nothing. The token stage claims a pending use of a valid token for the session (one
conditional UPDATE, so of two registrations racing for a token's last use exactly one wins);
registering turns that use into a completed one, and a session that expires before
registering gives it back. The session then remembers the user it registered, and
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
from typing import Any, NoReturn

import asyncpg

from homeserver.errors import MatrixError
from homeserver.protocol.appservice import Registration
from homeserver.services.accounts import AccountsService, Session, invalid_username
from homeserver.services.clock import Clock
from homeserver.services.uia import AuthRequired, UiaRequest, UiaSession, UserInteractiveAuth
from storage import registration_tokens as tokens_store
from storage import uia as store
from storage.database import Database

DUMMY_STAGE = "m.login.dummy"
TOKEN_STAGE = "m.login.registration_token"


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
    def __init__(
        self, db: Database, accounts: AccountsService, uia: UserInteractiveAuth, clock: Clock,
        *, require_token: bool,
    ) -> None:
        self._db = db
        self._accounts = accounts
        self._uia = uia
        self._clock = clock
        # The one flow offered, as Synapse offers it: the token stage first.
        self._flow = [TOKEN_STAGE, DUMMY_STAGE] if require_token else [DUMMY_STAGE]
        self._flows = [self._flow]

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
        stage = None if auth is None else auth.type
        if stage is None or stage not in self._flow:
            await self._challenge(session, params, password, request)
        assert auth is not None and stage is not None
        if stage == TOKEN_STAGE and (session is None or TOKEN_STAGE not in session.completed):
            session = await self._token_stage(session, params, password, request)
        completed = [] if session is None else session.completed
        passed = list(dict.fromkeys([*completed, stage]))
        if any(needed not in passed for needed in self._flow):
            session_id = await self._remember(session, params, password, request)
            await self._uia.complete(session_id, None, stage, request)
            raise AuthRequired(session_id, passed, flows=self._flows)
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
            await self._db.transaction(
                partial(_registered, session.session_id, registered.user_id),
                name="registration_registered",
            )
            await self._uia.complete(session.session_id, registered.user_id, stage, request)
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
    ) -> NoReturn:
        """Remember the request in its session and answer 401: the first challenge, or an
        unsupported stage type."""
        session_id = await self._remember(session, params, password, request)
        completed = session.completed if session is not None else []
        auth = request.auth
        if auth is None or auth.type is None:
            raise AuthRequired(session_id, completed, flows=self._flows)
        raise AuthRequired(
            session_id, completed, f"Unsupported authentication type {auth.type!r}",
            "M_UNRECOGNIZED", self._flows,
        )

    async def _remember(
        self, session: UiaSession | None, params: RegistrationParams, password: str | None,
        request: UiaRequest,
    ) -> str:
        """Remember the request's parameters (and the hash of its password, if the session
        has none yet) in its session, opened now if need be; the session's ID."""
        session_id = await self._uia.open(request, None) if session is None else session.session_id
        password_hash = None
        if password is not None and (session is None or session.password_hash is None):
            password_hash = await self._accounts.hash_new_password(password, request.client_ip)
        await self._db.run(
            lambda conn: store.update_registration(
                conn, session_id, params.to_json(), password_hash
            )
        )
        return session_id

    async def _token_stage(
        self, session: UiaSession | None, params: RegistrationParams, password: str | None,
        request: UiaRequest,
    ) -> UiaSession:
        """`m.login.registration_token`: claim a use of the token for the session (opened
        now if need be), or 401 M_UNAUTHORIZED when the token is not valid; the session as
        it is now."""
        assert request.auth is not None
        token = request.auth.token
        if token is None:
            raise MatrixError(400, "M_MISSING_PARAM", "The token stage needs 'token'")
        session_id = await self._remember(session, params, password, request)
        digest = request.digest(session_id)
        now = self._clock.now_ms()

        refused = AuthRequired(
            session_id, [] if session is None else session.completed,
            "Invalid registration token", "M_UNAUTHORIZED", self._flows,
        )

        async def claim(conn: asyncpg.Connection) -> None:
            # The session's row first: of two requests of one session, only one claims a use.
            if not await store.hold_registration_token(conn, session_id, token):
                return  # the other passed the stage already
            if not await tokens_store.claim_use(conn, token, now):
                raise refused  # and the hold is rolled back
            await store.complete_stage(conn, session_id, None, TOKEN_STAGE, digest)

        await self._db.transaction(claim, name="registration_token_claim")
        return await self._uia.resume(session_id, request)


async def _registered(session_id: str, user_id: str, conn: asyncpg.Connection) -> None:
    """The session registered `user_id`: the token use it held, if any, is completed."""
    token = await store.set_registered_user(conn, session_id, user_id)
    if token is not None:
        await tokens_store.complete_use(conn, token)
