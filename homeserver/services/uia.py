"""User-Interactive Authentication (spec "User-Interactive Authentication API") for the
endpoints that re-check who is at the keyboard: deleting devices, changing the password,
deactivating the account, replacing cross-signing keys.

Theory of operation. The one flow offered is a single `m.login.password` stage. A request
without `auth` opens a session (stored in PostgreSQL, so any worker can continue it) and is
answered 401 with the flows and the session ID. The session is bound to the request that
opened it: the SHA-256 of the session ID, method, path and body without `auth`; a different
request presenting the session is refused, so a password typed to delete one device cannot
be replayed to deactivate the account. It is also bound to the user: the access token's owner,
or for the endpoints usable without a token the user the password stage named. A wrong password
is 401 with the flows and `errcode: M_FORBIDDEN`, counted against the login-failure limit.
Once the stage is done the session authorises its request until it expires (the spec: a
client retrying a completed stage gets the result of the call, not an error).
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
from homeserver.services.clock import now_ms
from storage import uia as store
from storage.database import Database

PASSWORD_STAGE = "m.login.password"
FLOWS = [{"stages": [PASSWORD_STAGE]}]
SESSION_LIFETIME_MS = 15 * 60 * 1000


class AuthRequired(MatrixError):
    """A 401 challenge: the flows, the session, the completed stages and, after a failed
    attempt, why. The first challenge carries no errcode, as the spec's examples show."""

    def __init__(
        self, session: str, completed: list[str] | None = None, error: str | None = None,
        errcode: str = "M_FORBIDDEN",
    ) -> None:
        super().__init__(401, errcode, error or "Authentication required")
        self.session = session
        self.completed = completed or []
        self.failed = error is not None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"flows": FLOWS, "params": {}, "session": self.session}
        if self.completed:
            body["completed"] = self.completed
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


@dataclass(frozen=True, slots=True)
class UiaRequest:
    """One request to an endpoint behind UIA: what a session is bound to, and its `auth`."""

    method: str
    path: str
    body: dict[str, Any]  # without `auth`
    auth: AuthSubmission | None
    client_ip: str = ""  # failed password stages are limited per (address, user), as logins

    def digest(self, session_id: str) -> bytes:
        # ASCII-only JSON with sorted keys: the same request always hashes alike.
        body = json.dumps(self.body, sort_keys=True, separators=(",", ":"))
        text = "\0".join((session_id, self.method, self.path, body))
        return hashlib.sha256(text.encode()).digest()


class UserInteractiveAuth:
    def __init__(self, db: Database, accounts: AccountsService) -> None:
        self._db = db
        self._accounts = accounts

    async def authenticate(self, request: UiaRequest, user_id: str | None) -> str:
        """The user the request is authenticated as, or AuthRequired / another 4xx.

        `user_id` is the access token's owner; None for a request made without one, in which
        case the password stage's identifier says who is authenticating.
        """
        auth = request.auth
        if auth is None or auth.session is None:
            session_id = await self._open(request, user_id)
            if auth is None or auth.type is None:
                raise AuthRequired(session_id)
            completed: list[str] = []
            owner = user_id
        else:
            session_id = auth.session
            row = await self._db.run(lambda conn: store.get_session(conn, session_id, now_ms()))
            if row is None:
                raise MatrixError(400, "M_UNKNOWN", "Unknown or expired session ID")
            if row["request_hash"] != request.digest(session_id):
                raise forbidden("The request changed during user-interactive authentication")
            owner = row["user_id"]
            if owner is not None and user_id is not None and owner != user_id:
                raise forbidden("This authentication session belongs to another user")
            owner = owner or user_id
            completed = list(row["completed"])
            if PASSWORD_STAGE in completed:
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
        await self._db.run(
            lambda conn: store.complete_stage(conn, session_id, authenticated, PASSWORD_STAGE)
        )
        return authenticated

    async def _open(self, request: UiaRequest, user_id: str | None) -> str:
        session_id = secrets.token_urlsafe(24)
        now = now_ms()

        async def txn(conn: asyncpg.Connection) -> None:
            await store.delete_expired_sessions(conn, now)
            await store.insert_session(
                conn, session_id, user_id, request.digest(session_id), now + SESSION_LIFETIME_MS
            )

        await self._db.transaction(txn, name="uia_session")
        return session_id

    async def _password_stage(
        self, auth: AuthSubmission, owner: str | None, session_id: str, client_ip: str
    ) -> str:
        """Check the stage's password for the session's user; who passed it."""
        if auth.password is None:
            raise MatrixError(400, "M_MISSING_PARAM", "The password stage needs 'password'")
        named = self._accounts.local_user_id(auth.user) if auth.user is not None else owner
        if auth.user is None and owner is None:
            raise MatrixError(400, "M_MISSING_PARAM", "The password stage needs 'identifier'")
        failure = AuthRequired(session_id, None, "Invalid username or password")
        if named is None or (owner is not None and named != owner):
            raise failure
        if not await self._accounts.check_password(named, auth.password, client_ip):
            raise failure
        return named
