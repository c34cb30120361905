"""Accounts: registration, password login, access and refresh tokens, devices' sessions,
passwords and deactivation; profiles are `self.profiles` (services/profiles.py).

Theory of operation. An access token is `mat_` plus 32 random bytes; the database only ever sees
its SHA-256 digest. Every authenticated request resolves its token through `authenticate`, so
that path is served from a small in-process cache (`token_cache`): an entry lives at most a
minute and never past the token's expiry, and each refill from the database also records the
device's last-seen time and address, which therefore move at most once a minute per token. A
logout drops the cached entries at once in this process, and replication (`on_drop`) drops
them in the worker processes sharing the database.

Refresh tokens (spec "Refreshing access tokens"). A client that asks for one gets an access
token that expires after `accounts.access_token_lifetime_ms` and a `mar_` refresh token, bound
to the same device. `/refresh` exchanges a refresh token for a new pair; the old refresh token
(and its access token) stays valid until the new pair is first used, so a client that lost the
response can repeat the exchange; repeating it revokes the unused pair it got before.

Passwords are hashed by `passwords` (argon2id on its own thread pool, shared fairly between
client addresses, a dummy hash for unknown users). A failed password check costs a token of
the address's bucket for that user and of the address's bucket across users
(`rate_limits.login_failures` and `login_failures_per_ip`); an empty bucket refuses even the
right password from that address, so guessing stops there, while the user's logins from other
addresses keep working.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import asyncpg

from homeserver.config import Config
from homeserver.errors import MatrixError, forbidden, invalid_param, unknown_token
from homeserver.protocol.identifiers import (
    MAX_IDENTIFIER_BYTES,
    is_valid_localpart_for_registration,
    parse_user_id,
)
from homeserver.services.appservice_users import AppServiceUsers
from homeserver.services.appservices import AppServices
from homeserver.services.clock import Clock
from homeserver.services.openid import OpenIdTokens
from homeserver.services.passwords import Passwords, check_new_password
from homeserver.services.profiles import ProfileService
from homeserver.services.ratelimit import RateLimiter, address_key
from homeserver.services.requester import Requester
from homeserver.services.token_cache import TokenCache, hash_token
from storage import accounts as store
from storage import admin_users as admin_store
from storage import erasure as erasure_store
from storage import profiles as profiles_store
from storage.database import Database

if TYPE_CHECKING:
    from homeserver.services.remote_queries import RemoteQueries

TOKEN_PREFIX = "mat_"
REFRESH_TOKEN_PREFIX = "mar_"
DEVICE_ID_LENGTH = 10
MAX_DEVICE_ID_BYTES = 255
_GENERATED_LOCALPART_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Session:
    """What /register and /login hand back; no device or token when login was inhibited."""

    user_id: str
    device_id: str | None = None
    access_token: str | None = None
    refresh_token: str | None = None
    expires_in_ms: int | None = None


@dataclass(frozen=True, slots=True)
class DeviceLogin:
    """The session a registration or login starts: on which device, and whether the client
    can refresh tokens (and so gets an expiring access token)."""

    device_id: str
    display_name: str | None
    ip: str  # the device is "last seen" at the address that logged it in
    refresh: bool = False


@dataclass(frozen=True, slots=True)
class AccountDetails:
    """What an operator may choose of an account they create (shared-secret registration,
    the admin API) that a client registering itself does not."""

    displayname: str | None = None  # None: the localpart
    user_type: str | None = None  # 'bot' or 'support'; None: an ordinary user


PLAIN_ACCOUNT = AccountDetails()


def user_in_use() -> MatrixError:
    return MatrixError(400, "M_USER_IN_USE", "Desired user ID is already taken.")


def invalid_username(error: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_USERNAME", error)


class DeviceChanges(Protocol):
    """Who is told when a user's devices go away (`DeviceListService` in a running server)."""

    async def mark_changed(self, user_id: str, device_ids: Sequence[str] = ()) -> None: ...


class NoDeviceChanges:
    """For a process that serves no clients (`moot register-user`): nobody to tell."""

    async def mark_changed(self, user_id: str, device_ids: Sequence[str] = ()) -> None:
        return None


class AccountsService:
    def __init__(
        self, db: Database, config: Config, ratelimiter: RateLimiter, clock: Clock,
        device_lists: DeviceChanges, *, remote: RemoteQueries,
        appservices: AppServices | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self.openid = OpenIdTokens(clock)
        # Told when a device goes away, so other users stop encrypting for it.
        self._device_lists = device_lists
        self._config = config
        self._ratelimiter = ratelimiter
        limits = config.rate_limits
        self._passwords = Passwords(
            config.accounts.password_hash_threads,
            limits.password_checks_per_ip if limits.enabled else None,
        )
        self._tokens = TokenCache(clock)
        self.profiles = ProfileService(db, config.server.server_name, clock, remote)
        self.appservice_users = AppServiceUsers(db, appservices or AppServices(), clock)
        # Told a user ID after its erasure or reactivation committed (the room cache's
        # erased users).
        self.erased_changed: list[Callable[[str], None]] = []

    def close(self) -> None:
        """Stop the password hashing threads."""
        self._passwords.close()

    @property
    def server_name(self) -> str:
        return self._config.server.server_name

    @property
    def token_cache(self) -> TokenCache:
        """The cache of resolved access tokens (replication keeps processes' caches in step)."""
        return self._tokens

    # Authentication of requests

    async def authenticate(
        self, token: str, ip: str, *, as_user: str | None = None, as_device: str | None = None,
        user_agent: str | None = None,
    ) -> Requester:
        """The owner of an access token, or 401 M_UNKNOWN_TOKEN (`soft_logout` if expired);
        the device is last seen at `ip` with `user_agent` (what the admin API shows).
        An application service's `as_token` acts as `as_user` on `as_device` (the request's
        `user_id` and `device_id`; see appservice_users.py), a user's token ignores them."""
        registration = self.appservice_users.appservices.by_as_token(token)
        if registration is not None:
            return await self.appservice_users.requester(registration, as_user, as_device)
        if not token.startswith(TOKEN_PREFIX):
            raise unknown_token()
        token_hash = hash_token(token)
        cached = self._tokens.get(token_hash)
        if cached is not None:
            return cached
        generation = self._tokens.generation
        now = self._clock.now_ms()

        async def fetch(conn: asyncpg.Connection) -> asyncpg.Record | None:
            row = await store.get_token_owner(conn, token_hash)
            if row is None or row["deactivated"] or _expired(row["expires_ts"], now):
                return row
            await store.update_device_last_seen(
                conn, row["user_id"], row["device_id"], now, *self._kept(ip, user_agent)
            )
            if row["previous_hash"] is not None:
                # The first use of a refreshed pair revokes the refresh token it replaced.
                await store.delete_refresh_tokens(conn, [row["previous_hash"]], [])
                await store.clear_previous_refresh_token(conn, row["refresh_token_hash"])
            return row

        row = await self._db.run(fetch)
        if row is None or row["deactivated"]:
            raise unknown_token()
        if _expired(row["expires_ts"], now):
            raise MatrixError(401, "M_UNKNOWN_TOKEN", "Access token has expired", soft_logout=True)
        requester = Requester(row["user_id"], row["device_id"], row["is_admin"], row["is_guest"])
        if row["previous_hash"] is not None:
            self._tokens.drop(requester.user_id, requester.device_id)
            generation = self._tokens.generation
        self._tokens.put(token_hash, requester, row["expires_ts"], generation)
        return requester

    async def refresh(self, refresh_token: str) -> Session:
        """Exchange a refresh token for a new access and refresh token on the same device."""
        if not refresh_token.startswith(REFRESH_TOKEN_PREFIX):
            raise unknown_token("Unknown refresh token")
        token_hash = hash_token(refresh_token)
        now = self._clock.now_ms()

        async def txn(conn: asyncpg.Connection) -> Session:
            row = await store.get_refresh_token_for_update(conn, token_hash)
            if row is None:
                raise unknown_token("Unknown refresh token")
            # Using this token proves its predecessor is no longer needed; a pair this token
            # was exchanged for before (its response lost) is superseded by the new one.
            revoked = [] if row["previous_hash"] is None else [row["previous_hash"]]
            await store.delete_refresh_tokens(conn, revoked, [token_hash])
            return await self._new_tokens(
                conn, row["user_id"], row["device_id"], now, refresh=True, previous=token_hash
            )

        session = await self._db.transaction(txn, name="refresh")
        self._tokens.drop(session.user_id, session.device_id)
        return session

    # Registration

    def user_id_for_registration(self, localpart: str) -> str:
        """The user ID to allocate for `localpart`, or M_INVALID_USERNAME."""
        if not is_valid_localpart_for_registration(localpart):
            raise invalid_username(
                "User ID localparts may only contain a-z, 0-9, '.', '_', '=', '-', '/' and '+'"
            )
        user_id = f"@{localpart}:{self.server_name}"
        if len(user_id.encode()) > MAX_IDENTIFIER_BYTES:
            raise invalid_username(f"User IDs may not be longer than {MAX_IDENTIFIER_BYTES} bytes")
        return user_id

    def limit_registration(self, ip: str) -> None:
        """Count one registration request of `ip`, or 429: a challenge opens a session row
        and may hash a password, so every request counts, not only those that register."""
        self._ratelimiter.check("registration", address_key(ip))

    async def check_username_available(self, localpart: str) -> str:
        """The user ID `localpart` would get, or M_INVALID_USERNAME / M_EXCLUSIVE (an
        application service's exclusive namespace) / M_USER_IN_USE."""
        user_id = self.user_id_for_registration(localpart)
        self.appservice_users.check_user(None, user_id)  # M_EXCLUSIVE
        if await self._db.run(lambda conn: store.get_user(conn, user_id)) is not None:
            raise user_in_use()
        return user_id

    async def create_user(
        self, localpart: str, password: str | None, *, admin: bool = False,
        details: AccountDetails = PLAIN_ACCOUNT,
    ) -> str:
        """Create an account (and its profile) without logging in; returns the user ID."""
        self.user_id_for_registration(localpart)  # before the cost of a hash
        password_hash = None if password is None else await self.hash_new_password(password)
        session = await self._create(
            localpart, password_hash, admin=admin, login=None, details=details
        )
        return session.user_id

    async def hash_new_password(self, password: str, ip: str = "") -> str:
        """The hash to store for a password a user chose (M_WEAK_PASSWORD etc. first); `ip`:
        the client's address, whose share of the password hashing threads the hash takes."""
        check_new_password(password)
        return await self._passwords.hash(password, address_key(ip))

    async def register(
        self, localpart: str | None, password_hash: str | None, *, device_id: str | None,
        device_display_name: str | None, inhibit_login: bool, ip: str, refresh: bool = False,
        guest: bool = False, admin: bool = False, details: AccountDetails = PLAIN_ACCOUNT,
    ) -> Session:
        """Create an account (`guest`: a guest account) and, unless `inhibit_login`, its
        first device and access token (the caller has counted the request against
        `limit_registration`, or is an operator holding the registration shared secret)."""
        login = None if inhibit_login else DeviceLogin(
            self._device_id(device_id), device_display_name, ip, refresh
        )
        if localpart is not None:
            return await self._create(
                localpart, password_hash, admin=admin, login=login, guest=guest,
                details=details,
            )
        for _ in range(_GENERATED_LOCALPART_ATTEMPTS):
            try:
                return await self._create(
                    secrets.token_hex(6), password_hash, admin=False, login=login, guest=guest
                )
            except MatrixError as e:
                if e.errcode != "M_USER_IN_USE":
                    raise
        raise MatrixError(500, "M_UNKNOWN", "Could not allocate a user ID")

    async def login_registered(
        self, user_id: str, *, device_id: str | None, device_display_name: str | None,
        inhibit_login: bool, ip: str, refresh: bool = False,
    ) -> Session:
        """What a registration that already created `user_id` answers when repeated (Synapse:
        the same user, logged in afresh unless `inhibit_login`)."""
        row = await self._db.run(lambda conn: store.get_user(conn, user_id))
        if row is None or row["deactivated"]:
            raise MatrixError(403, "M_USER_DEACTIVATED", "This account has been deactivated")
        if inhibit_login:
            return Session(user_id)
        return await self._start_session(
            user_id, DeviceLogin(self._device_id(device_id), device_display_name, ip, refresh)
        )

    async def upgrade_guest(
        self, user_id: str, password_hash: str | None, *, device_id: str | None,
        device_display_name: str | None, inhibit_login: bool, ip: str, refresh: bool = False,
    ) -> Session:
        """Make the guest account `user_id` a full account with a password, keeping its user
        ID (spec "Guest Access"), and unless `inhibit_login` log it in on a device."""
        login = None if inhibit_login else DeviceLogin(
            self._device_id(device_id), device_display_name, ip, refresh
        )
        now = self._clock.now_ms()

        async def txn(conn: asyncpg.Connection) -> Session:
            if not await store.upgrade_guest(conn, user_id, password_hash):
                raise forbidden(f"{user_id} is not a guest account")
            if login is None:
                return Session(user_id)
            return await self._issue_token(conn, user_id, login, now)

        session = await self._db.transaction(txn, name="upgrade_guest")
        self._tokens.drop(user_id)  # the cached requesters of its tokens still say guest
        return session

    async def _create(
        self, localpart: str, password_hash: str | None, *, admin: bool,
        login: DeviceLogin | None, guest: bool = False, details: AccountDetails = PLAIN_ACCOUNT,
    ) -> Session:
        """Insert user and profile, and with `login` a session."""
        user_id = self.user_id_for_registration(localpart)
        now = self._clock.now_ms()

        async def txn(conn: asyncpg.Connection) -> Session:
            if not await store.insert_user(
                conn, user_id, password_hash, admin, now, is_guest=guest,
                user_type=details.user_type,
            ):
                raise user_in_use()
            await store.insert_profile(conn, user_id, details.displayname or localpart)
            if login is None:
                return Session(user_id)
            return await self._issue_token(conn, user_id, login, now)

        return await self._db.transaction(txn, name="register")

    # Login and logout

    def local_user_id(self, user: str) -> str | None:
        """The local user ID a login names (a localpart or a full user ID), or None."""
        if user.startswith("@"):
            try:
                localpart, server_name = parse_user_id(user)
            except ValueError:
                return None
            if server_name != self.server_name:
                return None
        else:
            localpart = user
        # Localparts are allocated in lower case, so "Alice" logs in as @alice.
        return f"@{localpart.lower()}:{self.server_name}"

    async def login(
        self, user: str, password: str, *, device_id: str | None,
        device_display_name: str | None, ip: str, refresh: bool = False,
    ) -> Session:
        """Check a password and start a session on a (new or existing) device."""
        user_id = self.local_user_id(user)
        who = address_key(ip)
        failures = self._failure_buckets(who, f"{who}|{user_id or user}")
        row = None
        if user_id is not None:
            row = await self._db.run(lambda conn: store.get_user(conn, user_id))
        if not await self._passwords.verify(row["password_hash"] if row else None, password, who):
            self._charge(failures)
            raise forbidden("Invalid username or password")
        assert row is not None and user_id is not None
        if row["deactivated"]:
            raise MatrixError(403, "M_USER_DEACTIVATED", "This account has been deactivated")
        login = DeviceLogin(self._device_id(device_id), device_display_name, ip, refresh)
        return await self._start_session(user_id, login)

    async def _start_session(self, user_id: str, login: DeviceLogin) -> Session:
        """A new access token on a (new or existing) device of `user_id`."""
        now = self._clock.now_ms()
        session = await self._db.transaction(
            lambda conn: self._issue_token(conn, user_id, login, now), name="login",
        )
        self._tokens.drop(user_id, login.device_id)
        return session

    async def logout(self, requester: Requester) -> None:
        """Delete the requester's device, and with it its access tokens."""
        await self.delete_devices(requester.user_id, [requester.device_id])

    async def logout_all(self, requester: Requester) -> None:
        """Delete every device of the requester, so every access token of theirs dies."""
        await self.delete_other_devices(requester.user_id, None)

    async def delete_devices(self, user_id: str, device_ids: list[str]) -> None:
        """Delete devices of `user_id` with their tokens (and, by the foreign keys, their
        end-to-end keys and to-device inbox); unknown IDs are ignored."""
        deleted = await self._db.transaction(
            lambda conn: store.delete_devices(conn, user_id, device_ids), name="delete_devices"
        )
        for device_id in deleted:
            self._tokens.drop(user_id, device_id)
        if deleted:
            await self._devices_changed(user_id, deleted)

    async def delete_other_devices(self, user_id: str, keep_device_id: str | None) -> None:
        """Delete every device of `user_id` but `keep_device_id` (None: every device)."""
        deleted = await self._db.transaction(
            lambda conn: store.delete_other_devices(conn, user_id, keep_device_id),
            name="delete_other_devices",
        )
        self._tokens.drop(user_id)
        await self._devices_changed(user_id, deleted)

    async def _devices_changed(self, user_id: str, device_ids: list[str]) -> None:
        await self._device_lists.mark_changed(user_id, device_ids)

    # Password and deactivation

    async def set_password(self, user_id: str, password: str) -> None:
        """Replace the account's password (the caller decides which sessions survive)."""
        check_new_password(password)
        password_hash = await self._passwords.hash(password, user_id)
        await self._db.transaction(
            lambda conn: store.update_password_hash(conn, user_id, password_hash),
            name="set_password",
        )

    async def deactivate(self, user_id: str, *, erase: bool = False) -> None:
        """Mark the account deactivated and delete every device and token of it. The user ID
        stays taken forever, so nobody can register it and inherit its rooms or trust.
        `erase` also marks it erased, clears its profile and deletes every other row about
        it that is not an event (storage/erasure.py; its media is the caller's), before the
        device-list change goes out, so that nobody finds its cross-signing keys after."""

        async def txn(conn: asyncpg.Connection) -> list[str]:
            await store.deactivate_user(conn, user_id, erase)
            deleted = await store.delete_other_devices(conn, user_id, None)
            if erase:
                await profiles_store.update_profile(conn, user_id, None, None, {})
                await erasure_store.erase_user_rows(conn, user_id)
            return deleted

        deleted = await self._db.transaction(txn, name="deactivate")
        self._tokens.drop(user_id)
        if erase:
            for hook in self.erased_changed:
                hook(user_id)
        await self._devices_changed(user_id, deleted)

    async def reactivate(self, user_id: str, password: str) -> None:
        """Undo a deactivation (an admin's), with a new password: the old one must not come
        back, whoever may have learnt it since."""
        check_new_password(password)
        password_hash = await self._passwords.hash(password, user_id)

        async def txn(conn: asyncpg.Connection) -> None:
            await admin_store.reactivate_user(conn, user_id)
            await store.update_password_hash(conn, user_id, password_hash)

        await self._db.transaction(txn, name="reactivate")
        for hook in self.erased_changed:  # no longer erased
            hook(user_id)

    async def set_admin(self, user_id: str, admin: bool) -> None:
        """Grant or revoke the server-admin flag; the user's cached tokens go, so a revoked
        admin loses the admin API at once rather than when the cache entries age out."""
        await self._db.transaction(
            lambda conn: admin_store.update_admin(conn, user_id, admin), name="set_admin"
        )
        self._tokens.drop(user_id)

    async def check_password(self, user_id: str, password: str, ip: str = "") -> bool:
        """User-Interactive Authentication's password stage for an authenticated user.

        Failures count against the same limit as failed logins, so a stolen access token
        cannot be used to guess the account's password. The key includes the address, so a
        stranger's wrong guesses cannot lock the user out of their own re-authentication.
        """
        who = address_key(ip)
        failures = self._failure_buckets(who, f"uia|{who}|{user_id}")
        row = await self._db.run(lambda conn: store.get_user(conn, user_id))
        # A deactivated account authenticates nothing any more.
        password_hash = row["password_hash"] if row and not row["deactivated"] else None
        if await self._passwords.verify(password_hash, password, who):
            return True
        self._charge(failures)
        return False

    def _kept(self, ip: str, user_agent: str | None) -> tuple[str | None, str | None]:
        """What of a request's address and user agent is stored: nothing when
        `privacy.client_ip_retention_ms` is 0 (the client IP sweep forgets the rest)."""
        if self._config.privacy.client_ip_retention_ms == 0:
            return None, None
        return ip, user_agent

    def _failure_buckets(self, ip: str, user_key: str) -> list[tuple[str, str]]:
        """The failed-password buckets a check from `ip` counts against; raises 429 if one
        is empty (an exhausted bucket refuses even the right password, or guessing would go
        on). Per address and user, and per address across users (fresh names cost too)."""
        buckets = [("login_failures", user_key), ("login_failures_per_ip", ip)]
        for kind, key in buckets:
            self._ratelimiter.peek(kind, key)
        return buckets

    def _charge(self, buckets: list[tuple[str, str]]) -> None:
        for kind, key in buckets:
            self._ratelimiter.charge(kind, key)

    async def _issue_token(
        self, conn: asyncpg.Connection, user_id: str, login: DeviceLogin, now: int
    ) -> Session:
        # Logging in again on a known device replaces its tokens and keeps its display name.
        device_id = login.device_id
        if not await store.insert_device(conn, user_id, device_id, login.display_name, now):
            await store.delete_device_tokens(conn, user_id, device_id)
        await store.update_device_last_seen(
            conn, user_id, device_id, now, *self._kept(login.ip, None)
        )
        return await self._new_tokens(conn, user_id, device_id, now, refresh=login.refresh)

    async def _new_tokens(
        self, conn: asyncpg.Connection, user_id: str, device_id: str, now: int, *,
        refresh: bool, previous: bytes | None = None,
    ) -> Session:
        """A new access token, and with `refresh` an expiring one plus a refresh token."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        if not refresh:
            await store.insert_access_token(conn, hash_token(token), user_id, device_id, now)
            return Session(user_id, device_id, token)
        refresh_token = REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(32)
        refresh_hash = hash_token(refresh_token)
        lifetime = self._config.accounts.access_token_lifetime_ms
        await store.insert_refresh_token(conn, refresh_hash, user_id, device_id, previous, now)
        await store.insert_access_token(
            conn, hash_token(token), user_id, device_id, now, now + lifetime, refresh_hash
        )
        return Session(user_id, device_id, token, refresh_token, lifetime)

    @staticmethod
    def _device_id(given: str | None) -> str:
        if given is None:
            return "".join(secrets.choice(string.ascii_uppercase) for _ in range(DEVICE_ID_LENGTH))
        return valid_device_id(given)


def valid_device_id(device_id: str) -> str:
    """`device_id` if a client (or an admin) may name a device so; else M_INVALID_PARAM."""
    if not device_id or len(device_id.encode("utf-8", "surrogatepass")) > MAX_DEVICE_ID_BYTES:
        raise invalid_param(f"'device_id' must be 1 to {MAX_DEVICE_ID_BYTES} bytes")
    return device_id


def _expired(expires_ts: int | None, now: int) -> bool:
    return expires_ts is not None and now >= expires_ts
