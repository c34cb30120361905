"""Password hashing: argon2id in a worker thread, one hash at a time.

A login never stalls the event loop, and each argon2 run holds 64 MiB, so running them one at a
time bounds the process's memory (a burst of registrations would otherwise multiply it by the
thread pool size). An unknown user is checked against a dummy hash, so that timing does not
reveal which names exist.
"""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from homeserver.errors import MatrixError, invalid_param

# argon2 hashes whatever it is given: a cap keeps a megabyte "password" from costing CPU.
MAX_PASSWORD_LENGTH = 512


def check_new_password(password: str) -> None:
    """M_WEAK_PASSWORD / M_INVALID_PARAM before any work is done with a new password."""
    if not password:
        raise MatrixError(400, "M_WEAK_PASSWORD", "The password may not be empty")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise invalid_param(f"Passwords may not be longer than {MAX_PASSWORD_LENGTH} chars")


class Passwords:
    def __init__(self) -> None:
        self._hasher = PasswordHasher()  # argon2id with the library's recommended cost
        self._kdf = asyncio.Semaphore(1)
        self._dummy_hash: str | None = None

    async def hash(self, password: str) -> str:
        async with self._kdf:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True if `password` matches; an absent hash still costs one verification."""
        if len(password) > MAX_PASSWORD_LENGTH:
            return False
        if password_hash is None:
            if self._dummy_hash is None:
                self._dummy_hash = await self.hash(secrets.token_urlsafe(16))
            password_hash = self._dummy_hash
            password = ""  # never matches the random dummy password
        try:
            async with self._kdf:
                return await asyncio.to_thread(self._hasher.verify, password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
