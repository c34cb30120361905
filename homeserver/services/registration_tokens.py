"""Registration tokens (spec "Token-authenticated registration"; Synapse's admin API
`/_synapse/admin/v1/registration_tokens`): what admins make, change and delete, and whether a
token is valid now.

A token is valid while it has not expired and its uses (pending, i.e. held by registrations
in progress, plus completed) are below `uses_allowed`. Registration claims and completes uses
itself (services/registration.py), in the transactions that record its stages.
"""

from __future__ import annotations

import re
import secrets
import string
from functools import partial

from homeserver.errors import MatrixError, invalid_param, not_found
from homeserver.services.clock import Clock
from storage import registration_tokens as store
from storage.database import Database
from storage.registration_tokens import RegistrationToken

# The spec's opaque identifier grammar; at most 64 characters.
TOKEN_CHARACTERS = string.ascii_letters + string.digits + "._~-"
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9._~-]{1,64}")
MAX_TOKEN_LENGTH = 64
DEFAULT_LENGTH = 16
# A generated token that exists already is drawn again, this many times at most.
_GENERATION_ATTEMPTS = 5

# `update`'s way to say "unchanged" apart from "set to null": the new value in a 1-tuple.
Change = tuple[int | None] | None


def check_token(token: str) -> str:
    if not TOKEN_PATTERN.fullmatch(token):
        raise invalid_param(
            "'token' must be 1 to 64 characters among A-Z, a-z, 0-9, '.', '_', '~' and '-'"
        )
    return token


class RegistrationTokens:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def list_tokens(self, valid: bool | None) -> list[RegistrationToken]:
        """Every token; `valid`: only the valid ones (True), only the others (False)."""
        now = self._clock.now_ms()
        return await self._db.run(lambda conn: store.get_tokens(conn, now, valid))

    async def get(self, token: str) -> RegistrationToken:
        found = await self._db.run(lambda conn: store.get_token(conn, token))
        if found is None:
            raise _unknown(token)
        return found

    async def is_valid(self, token: str) -> bool:
        now = self._clock.now_ms()
        return await self._db.run(lambda conn: store.is_valid(conn, token, now))

    async def create(
        self, token: str | None, uses_allowed: int | None, expiry_time: int | None, length: int
    ) -> RegistrationToken:
        """A new token: `token` as given, else `length` random characters."""
        self._check_expiry(expiry_time)
        insert = partial(store.insert_token, uses_allowed=uses_allowed, expiry_time=expiry_time)
        if token is not None:
            given = check_token(token)
            created = await self._db.run(lambda conn: insert(conn, given))
            if created is None:
                raise invalid_param(f"Token already exists: {token}")
            return created
        for _ in range(_GENERATION_ATTEMPTS):
            drawn = "".join(secrets.choice(TOKEN_CHARACTERS) for _ in range(length))
            created = await self._db.run(partial(insert, token=drawn))
            if created is not None:
                return created
        # Only short tokens run out: 66 characters to the power of `length`.
        raise invalid_param(f"No unused token of length {length} was found; ask a longer one")

    async def update(
        self, token: str, uses_allowed: Change, expiry_time: Change
    ) -> RegistrationToken:
        if expiry_time is not None:
            self._check_expiry(expiry_time[0])
        updated = await self._db.run(
            lambda conn: store.update_token(conn, token, uses_allowed, expiry_time)
        )
        if updated is None:
            raise _unknown(token)
        return updated

    async def delete(self, token: str) -> None:
        if not await self._db.run(lambda conn: store.delete_token(conn, token)):
            raise _unknown(token)

    def _check_expiry(self, expiry_time: int | None) -> None:
        """Synapse refuses to set an expiry time that has passed already."""
        if expiry_time is not None and expiry_time < self._clock.now_ms():
            raise invalid_param("'expiry_time' must not be in the past")


def _unknown(token: str) -> MatrixError:
    return not_found(f"No such registration token: {token}")
