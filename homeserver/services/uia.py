"""User-Interactive Authentication (spec "User-Interactive Authentication API") for the
endpoints that re-check who is at the keyboard: deleting devices, changing the password,
deactivating the account, replacing cross-signing keys; and the sessions registration keeps.

Theory of operation. The one flow offered here is a single `m.login.password` stage. A request
without `auth` opens a session (stored in PostgreSQL, so any worker can continue it) and is
answered 401 with the flows and the session ID. The session is bound to the endpoint that
opened it, its method and path, as Synapse reads "the same request": clients add or drop body
fields between stages (`logout_devices` appears only in the completing request of some), so
the body is not compared, and the body of the completing request is the one executed. A
request to another endpoint presenting the session is refused, so a password typed to delete
one device cannot be replayed to delete another or to deactivate the account. The session is
also bound to the user: the access token's owner, or for the endpoints usable without a token
the user the password stage named; a password stage naming anyone else is refused (403). A
wrong password is 401 with the flows and `errcode: M_FORBIDDEN`, counted against the
login-failure limit. Every 401 lists the stages `completed` so far. Once the stage is done the
session answers again, until it expires, the request that completed it (the spec: a client
retrying a completed flow gets the result of the call), and nothing else. Expired sessions
are deleted when a new one opens; a registration session that holds a pending use of a
registration token (registration.py) gives it back then.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

import asyncpg

from homeserver.errors import MatrixError, forbidden
from homeserver.services.accounts import AccountsService
from homeserver.services.clock import Clock
from homeserver.services.requester import Requester
from storage import registration_tokens as tokens_store
from storage import uia as store
from storage.database import Database

PASSWORD_STAGE = "m.login.password"
PASSWORD_FLOWS = [[PASSWORD_STAGE]]
SESSION_LIFETIME_MS = 15 * 60 * 1000


class AuthRequired(MatrixError):
    """A 401 challenge: the flows, the session, the completed stages and, after a failed
    attempt, why. The first challenge carries no errcode, as the spec's examples show."""

    def __init__(
        self, session: str, completed: list[str] | None = None, error: str | None = None,
        errcode: str = "M_FORBIDDEN", flows: list[list[str]] = PASSWORD_FLOWS,
    ) -> None:
        super().__init__(401, errcode, error or "Authentication required")
        self.session = session
        self.completed = completed or []
        self.flows = flows
        self.failed = error is not None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "flows": [{"stages": flow} for flow in self.flows], "params": {},
            "session": self.session, "completed": self.completed,
        }
        if self.failed:
            body |= {"errcode": self.errcode, "error": self.error}
        return body


@dataclass(frozen=True, slots=True)
class AuthSubmission:
    """The `auth` object of a request, checked for types at the edge."""

    type: str | None
    session: str | None
    user: str | None  # the m.id.user identifier (or legacy `user`), if given
    password: str | None
    token: str | None = None  # the m.login.registration_token stage's token


@dataclass(frozen=True, slots=True)
class UiaRequest:
    """One request to an endpoint behind UIA: what a session is bound to, and its `auth`."""

    method: str
    path: str
    body: dict[str, Any]  # without `auth`
    auth: AuthSubmission | None
    client_ip: str = ""  # failed password stages are limited per (address, user), as logins

    def digest(self, session_id: str) -> bytes:
        """What a completed session remembers of the request that completed it."""
        # ASCII-only JSON with sorted keys: the same body always hashes alike.
        body = json.dumps(self.body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(f"{session_id}\0{body}".encode()).digest()


@dataclass(frozen=True, slots=True)
class UiaSession:
    """A live session, as `resume` finds it."""

    session_id: str
    user_id: str | None  # whom it authenticates: the opener's token owner, or a stage's user
    completed: list[str]
    completed_hash: bytes | None  # the digest of the request that completed the flow
    params: dict[str, Any] | None  # registration: the parameters given so far
    password_hash: str | None  # registration: the hash of the password given so far
    registered_user_id: str | None  # registration: whom the session registered
    registration_token: str | None  # registration: the token whose pending use it holds


class UserInteractiveAuth:
    def __init__(self, db: Database, accounts: AccountsService, clock: Clock) -> None:
        self._db = db
        self._accounts = accounts
        self._clock = clock

    async def authenticate_requester(self, request: UiaRequest, requester: Requester) -> str:
        """`authenticate` for the owner of the request's token; an application service acting
        as one of its users needs no authentication stages (spec "Device management",
        "Cross-signing": it manages its users' devices and keys on its own)."""
        if requester.appservice is not None:
            return requester.user_id
        return await self.authenticate(request, requester.user_id)

    async def authenticate(self, request: UiaRequest, user_id: str | None) -> str:
        """The user the request is authenticated as, or AuthRequired / another 4xx.

        `user_id` is the access token's owner; None for a request made without one, in which
        case the password stage's identifier says who is authenticating.
        """
        auth = request.auth
        if auth is None or auth.session is None:
            session_id = await self.open(request, user_id)
            if auth is None or auth.type is None:
                raise AuthRequired(session_id)
            completed: list[str] = []
            owner = user_id
        else:
            session = await self.resume(auth.session, request)
            session_id = session.session_id
            owner = session.user_id
            if owner is not None and user_id is not None and owner != user_id:
                raise forbidden("This authentication session belongs to another user")
            owner = owner or user_id
            completed = session.completed
            if PASSWORD_STAGE in completed:
                if session.completed_hash != request.digest(session_id):
                    raise forbidden("This authentication session completed another request")
                assert owner is not None
                return owner
            if auth.type is None:
                raise AuthRequired(session_id, completed)
        if auth.type != PASSWORD_STAGE:
            raise AuthRequired(
                session_id, completed, f"Unsupported authentication type {auth.type!r}",
                "M_UNRECOGNIZED",
            )
        authenticated = await self._password_stage(auth, owner, session_id, request.client_ip)
        await self.complete(session_id, authenticated, PASSWORD_STAGE, request)
        return authenticated

    async def open(self, request: UiaRequest, user_id: str | None) -> str:
        """A new session for the request's endpoint and `user_id` (None: not known yet)."""
        session_id = secrets.token_urlsafe(24)
        now = self._clock.now_ms()

        async def txn(conn: asyncpg.Connection) -> None:
            await tokens_store.release_uses_of_expired_sessions(conn, now)
            await store.delete_expired_sessions(conn, now)
            await store.insert_session(
                conn, session_id, user_id, request.method, request.path,
                now + SESSION_LIFETIME_MS,
            )

        await self._db.transaction(txn, name="uia_session")
        return session_id

    async def resume(self, session_id: str, request: UiaRequest) -> UiaSession:
        """The live session `session_id`, if it was opened by the request's endpoint."""
        now = self._clock.now_ms()
        row = await self._db.run(lambda conn: store.get_session(conn, session_id, now))
        if row is None:
            raise MatrixError(400, "M_UNKNOWN", "Unknown or expired session ID")
        if (row["method"], row["path"]) != (request.method, request.path):
            raise forbidden("This session authenticates a request to another endpoint")
        return UiaSession(
            session_id, row["user_id"], list(row["completed"]),
            None if row["completed_hash"] is None else bytes(row["completed_hash"]),
            row["params"], row["password_hash"], row["registered_user_id"],
            row["registration_token"],
        )

    async def complete(
        self, session_id: str, user_id: str | None, stage: str, request: UiaRequest
    ) -> None:
        """Record `stage` as passed by `user_id` with this request."""
        digest = request.digest(session_id)
        await self._db.run(
            lambda conn: store.complete_stage(conn, session_id, user_id, stage, digest)
        )

    async def _password_stage(
        self, auth: AuthSubmission, owner: str | None, session_id: str, client_ip: str
    ) -> str:
        """Check the stage's password for the session's user; who passed it."""
        if auth.password is None:
            raise MatrixError(400, "M_MISSING_PARAM", "The password stage needs 'password'")
        if auth.user is None and owner is None:
            raise MatrixError(400, "M_MISSING_PARAM", "The password stage needs 'identifier'")
        named = self._accounts.local_user_id(auth.user) if auth.user is not None else owner
        if owner is not None and named != owner:
            # Synapse: "Invalid auth", 403. Refused before any password is checked, so this
            # is no way to test another user's password either.
            raise forbidden("You may only authenticate as the user this session belongs to")
        failure = AuthRequired(session_id, None, "Invalid username or password")
        if named is None:
            raise failure
        if not await self._accounts.check_password(named, auth.password, client_ip):
            raise failure
        return named
