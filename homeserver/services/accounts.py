"""Accounts: registration, password login, access tokens, devices' sessions and profiles.

Theory of operation. An access token is `mat_` plus 32 random bytes; the database only ever sees
its SHA-256 digest. Every authenticated request resolves its token through `authenticate`, so
that path is served from a small in-process cache: an entry lives at most `TOKEN_CACHE_TTL_S`,
and each refill from the database also records the device's last-seen time and address, which
therefore move at most once a minute per token. A logout drops the cached entries at once in
this process; other processes sharing the database stop honouring the token within the TTL.

Passwords are hashed with argon2id in a worker thread, so a login never stalls the event loop.
An unknown user is checked against a dummy hash, so that timing does not reveal which names exist.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import string
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from homeserver.config import Config
from homeserver.errors import MatrixError, forbidden, invalid_param, not_found, unknown_token
from homeserver.protocol.identifiers import (
    MAX_IDENTIFIER_BYTES,
    is_valid_localpart_for_registration,
    parse_user_id,
)
from homeserver.services.clock import now_ms
from homeserver.services.ratelimit import RateLimiter
from homeserver.services.requester import Requester
from storage import accounts as store
from storage.database import Database

if TYPE_CHECKING:
    from homeserver.services.device_lists import DeviceListService

TOKEN_PREFIX = "mat_"
TOKEN_CACHE_TTL_S = 60.0
TOKEN_CACHE_SIZE = 50_000
DEVICE_ID_LENGTH = 10
MAX_DEVICE_ID_BYTES = 255
# argon2 hashes whatever it is given: a cap keeps a megabyte "password" from costing CPU.
MAX_PASSWORD_LENGTH = 512
MAX_DISPLAYNAME_LENGTH = 256
MAX_AVATAR_URL_LENGTH = 1000
_GENERATED_LOCALPART_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Session:
    """What /register and /login hand back; no device or token when login was inhibited."""

    user_id: str
    device_id: str | None = None
    access_token: str | None = None


def user_in_use() -> MatrixError:
    return MatrixError(400, "M_USER_IN_USE", "Desired user ID is already taken.")


def invalid_username(error: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_USERNAME", error)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class _TokenCache:
    """Token hash → Requester, bounded LRU with a TTL.

    `generation` moves on every invalidation, so a lookup that raced a logout does not put
    the revoked token back into the cache.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._items: OrderedDict[bytes, tuple[Requester, float]] = OrderedDict()
        self.generation = 0

    def get(self, token_hash: bytes) -> Requester | None:
        item = self._items.get(token_hash)
        if item is None:
            return None
        requester, stored = item
        if self._clock() - stored >= TOKEN_CACHE_TTL_S:
            del self._items[token_hash]
            return None
        self._items.move_to_end(token_hash)
        return requester

    def put(self, token_hash: bytes, requester: Requester, generation: int) -> None:
        if generation != self.generation:
            return
        self._items[token_hash] = (requester, self._clock())
        self._items.move_to_end(token_hash)
        if len(self._items) > TOKEN_CACHE_SIZE:
            self._items.popitem(last=False)

    def drop(self, user_id: str, device_id: str | None = None) -> None:
        """Forget the tokens of one device, or of every device when `device_id` is None."""
        self.generation += 1
        for key, (requester, _) in list(self._items.items()):
            if requester.user_id == user_id and device_id in (None, requester.device_id):
                del self._items[key]


class AccountsService:
    def __init__(
        self, db: Database, config: Config, ratelimiter: RateLimiter,
        clock: Callable[[], float] = time.monotonic,
        device_lists: DeviceListService | None = None,
    ) -> None:
        self._db = db
        # Told when a device goes away, so other users stop encrypting for it.
        self._device_lists = device_lists
        self._config = config
        self._ratelimiter = ratelimiter
        self._hasher = PasswordHasher()  # argon2id with the library's recommended cost
        # Each argon2 hash holds 64 MiB while it runs; one at a time bounds the process's
        # memory (a burst of registrations otherwise multiplies it by the thread pool size).
        self._kdf = asyncio.Semaphore(1)
        self._tokens = _TokenCache(clock)
        self._dummy_hash: str | None = None

    @property
    def server_name(self) -> str:
        return self._config.server.server_name

    # Authentication of requests

    async def authenticate(self, token: str, ip: str) -> Requester:
        """The owner of an access token, or 401 M_UNKNOWN_TOKEN."""
        if not token.startswith(TOKEN_PREFIX):
            raise unknown_token()
        token_hash = hash_token(token)
        cached = self._tokens.get(token_hash)
        if cached is not None:
            return cached
        generation = self._tokens.generation

        async def fetch(conn: asyncpg.Connection) -> asyncpg.Record | None:
            row = await store.get_token_owner(conn, token_hash)
            if row is not None and not row["deactivated"]:
                await store.update_device_last_seen(
                    conn, row["user_id"], row["device_id"], now_ms(), ip
                )
            return row

        row = await self._db.run(fetch)
        if row is None or row["deactivated"]:
            raise unknown_token()
        requester = Requester(row["user_id"], row["device_id"], row["is_admin"])
        self._tokens.put(token_hash, requester, generation)
        return requester

    # Registration

    def _user_id_for_registration(self, localpart: str) -> str:
        """The user ID to allocate for `localpart`, or M_INVALID_USERNAME."""
        if not is_valid_localpart_for_registration(localpart):
            raise invalid_username(
                "User ID localparts may only contain a-z, 0-9, '.', '_', '=', '-', '/' and '+'"
            )
        user_id = f"@{localpart}:{self.server_name}"
        if len(user_id.encode()) > MAX_IDENTIFIER_BYTES:
            raise invalid_username(f"User IDs may not be longer than {MAX_IDENTIFIER_BYTES} bytes")
        return user_id

    async def check_username_available(self, localpart: str) -> str:
        """The user ID `localpart` would get, or M_INVALID_USERNAME / M_USER_IN_USE."""
        user_id = self._user_id_for_registration(localpart)
        if await self._db.run(lambda conn: store.get_user(conn, user_id)) is not None:
            raise user_in_use()
        return user_id

    async def create_user(
        self, localpart: str, password: str | None, *, admin: bool = False
    ) -> str:
        """Create an account (and its profile) without logging in; returns the user ID."""
        session = await self._create(localpart, password, admin=admin, login=None)
        return session.user_id

    async def register(
        self, localpart: str | None, password: str | None, *, device_id: str | None,
        device_display_name: str | None, inhibit_login: bool, ip: str,
    ) -> Session:
        """Create an account and, unless `inhibit_login`, its first device and access token."""
        self._ratelimiter.check("registration", ip)
        login = None if inhibit_login else (self._device_id(device_id), device_display_name)
        if localpart is not None:
            return await self._create(localpart, password, admin=False, login=login)
        for _ in range(_GENERATED_LOCALPART_ATTEMPTS):
            try:
                return await self._create(secrets.token_hex(6), password, admin=False, login=login)
            except MatrixError as e:
                if e.errcode != "M_USER_IN_USE":
                    raise
        raise MatrixError(500, "M_UNKNOWN", "Could not allocate a user ID")

    async def _create(
        self, localpart: str, password: str | None, *, admin: bool,
        login: tuple[str, str | None] | None,
    ) -> Session:
        """Insert user and profile, and with `login` = (device ID, display name) a session."""
        user_id = self._user_id_for_registration(localpart)
        if password is not None and not password:
            raise MatrixError(400, "M_WEAK_PASSWORD", "The password may not be empty")
        if password is not None and len(password) > MAX_PASSWORD_LENGTH:
            raise invalid_param(f"Passwords may not be longer than {MAX_PASSWORD_LENGTH} chars")
        password_hash = None if password is None else await self._hash_password(password)
        now = now_ms()

        async def txn(conn: asyncpg.Connection) -> Session:
            if not await store.insert_user(conn, user_id, password_hash, admin, now):
                raise user_in_use()
            await store.insert_profile(conn, user_id, localpart)
            if login is None:
                return Session(user_id)
            return await self._issue_token(conn, user_id, login[0], login[1], now)

        return await self._db.transaction(txn, name="register")

    # Login and logout

    def _login_user_id(self, user: str) -> str | None:
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
        device_display_name: str | None, ip: str,
    ) -> Session:
        """Check a password and start a session on a (new or existing) device."""
        user_id = self._login_user_id(user)
        failure_key = f"{ip}|{user_id or user}"
        # An exhausted bucket refuses even the right password, or guessing would go on.
        self._ratelimiter.peek("login_failures", failure_key)
        row = None
        if user_id is not None:
            row = await self._db.run(lambda conn: store.get_user(conn, user_id))
        if not await self._verify_password(row["password_hash"] if row else None, password):
            self._ratelimiter.check("login_failures", failure_key)
            raise forbidden("Invalid username or password")
        assert row is not None and user_id is not None
        if row["deactivated"]:
            raise MatrixError(403, "M_USER_DEACTIVATED", "This account has been deactivated")
        device = self._device_id(device_id)
        now = now_ms()
        session = await self._db.transaction(
            lambda conn: self._issue_token(conn, user_id, device, device_display_name, now),
            name="login",
        )
        self._tokens.drop(user_id, device)
        return session

    async def logout(self, requester: Requester) -> None:
        """Delete the requester's device, and with it its access tokens."""
        await self._db.transaction(
            lambda conn: store.delete_device(conn, requester.user_id, requester.device_id),
            name="logout",
        )
        self._tokens.drop(requester.user_id, requester.device_id)
        await self._devices_changed(requester.user_id)

    async def logout_all(self, requester: Requester) -> None:
        """Delete every device of the requester, so every access token of theirs dies."""
        await self._db.transaction(
            lambda conn: store.delete_user_devices(conn, requester.user_id), name="logout_all"
        )
        self._tokens.drop(requester.user_id)
        await self._devices_changed(requester.user_id)

    async def _devices_changed(self, user_id: str) -> None:
        if self._device_lists is not None:
            await self._device_lists.mark_changed(user_id)

    async def check_password(self, user_id: str, password: str) -> bool:
        """User-Interactive Authentication's password stage for an authenticated user.

        Failures count against the same limit as failed logins, so a stolen access token
        cannot be used to guess the account's password.
        """
        failure_key = f"uia|{user_id}"
        self._ratelimiter.peek("login_failures", failure_key)
        row = await self._db.run(lambda conn: store.get_user(conn, user_id))
        if await self._verify_password(row["password_hash"] if row else None, password):
            return True
        self._ratelimiter.check("login_failures", failure_key)
        return False

    async def _issue_token(
        self, conn: asyncpg.Connection, user_id: str, device_id: str,
        display_name: str | None, now: int,
    ) -> Session:
        # Logging in again on a known device replaces its tokens and keeps its display name.
        if not await store.insert_device(conn, user_id, device_id, display_name, now):
            await store.delete_device_tokens(conn, user_id, device_id)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        await store.insert_access_token(conn, hash_token(token), user_id, device_id, now)
        return Session(user_id, device_id, token)

    @staticmethod
    def _device_id(given: str | None) -> str:
        if given is None:
            return "".join(secrets.choice(string.ascii_uppercase) for _ in range(DEVICE_ID_LENGTH))
        if not given or len(given.encode("utf-8", "surrogatepass")) > MAX_DEVICE_ID_BYTES:
            raise invalid_param(f"'device_id' must be 1 to {MAX_DEVICE_ID_BYTES} bytes")
        return given

    async def _hash_password(self, password: str) -> str:
        async with self._kdf:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def _verify_password(self, password_hash: str | None, password: str) -> bool:
        """True if `password` matches; an absent hash still costs one verification."""
        if len(password) > MAX_PASSWORD_LENGTH:
            return False
        if password_hash is None:
            if self._dummy_hash is None:
                self._dummy_hash = await self._hash_password(secrets.token_urlsafe(16))
            password_hash = self._dummy_hash
            password = ""  # never matches the random dummy password
        try:
            async with self._kdf:
                return await asyncio.to_thread(self._hasher.verify, password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    # Profiles

    async def get_profile(self, user_id: str) -> dict[str, Any]:
        """The displayname and avatar_url that are set, or M_NOT_FOUND for an unknown user."""
        row = await self._db.run(lambda conn: store.get_profile(conn, user_id))
        if row is None:
            raise not_found("Profile not found")
        return {key: row[key] for key in ("displayname", "avatar_url") if row[key] is not None}

    async def set_displayname(self, requester: Requester, user_id: str, name: str) -> None:
        self._check_profile_write(requester, user_id, "displayname", name, MAX_DISPLAYNAME_LENGTH)
        await self._db.transaction(
            lambda conn: store.update_displayname(conn, user_id, name), name="set_displayname"
        )

    async def set_avatar_url(self, requester: Requester, user_id: str, url: str) -> None:
        self._check_profile_write(requester, user_id, "avatar_url", url, MAX_AVATAR_URL_LENGTH)
        await self._db.transaction(
            lambda conn: store.update_avatar_url(conn, user_id, url), name="set_avatar_url"
        )

    @staticmethod
    def _check_profile_write(
        requester: Requester, user_id: str, field: str, value: str, max_length: int
    ) -> None:
        if requester.user_id != user_id:
            raise forbidden("You may only change your own profile")
        if len(value) > max_length:
            raise invalid_param(f"'{field}' may not be longer than {max_length} characters")
