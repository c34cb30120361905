"""Password hashing: argon2id on a thread pool of its own, shared fairly between addresses.

A login never stalls the event loop, and argon2 never waits behind DNS lookups or media I/O on
the default pool (nor they behind it). Each argon2 run holds 64 MiB, so the pool is small
(`accounts.password_hash_threads`), which bounds the process's memory. Jobs reach the pool
through `FairSlots`: an address with `rate_limits.password_checks_per_ip` checks already
running or waiting is refused with 429, and the others are served round-robin by address, so
a flood of logins from one address cannot queue a login from another behind it. An unknown
user is checked against a dummy hash, so that timing does not reveal which names exist.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from homeserver.errors import MatrixError, invalid_param
from homeserver.services.fair_slots import FairSlots

# argon2 hashes whatever it is given: a cap keeps a megabyte "password" from costing CPU.
MAX_PASSWORD_LENGTH = 512
# What a refused address is told to wait: about one argon2 run here.
RETRY_AFTER_MS = 500

T = TypeVar("T")


def check_new_password(password: str) -> None:
    """M_WEAK_PASSWORD / M_INVALID_PARAM before any work is done with a new password."""
    if not password:
        raise MatrixError(400, "M_WEAK_PASSWORD", "The password may not be empty")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise invalid_param(f"Passwords may not be longer than {MAX_PASSWORD_LENGTH} chars")


class Passwords:
    def __init__(self, threads: int = 2, per_key: int | None = None) -> None:
        """`threads` argon2 runs at once; `per_key` jobs at most per address (None: no cap)."""
        self._hasher = PasswordHasher()  # argon2id with the library's recommended cost
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="argon2")
        self._slots = FairSlots(threads, per_key, RETRY_AFTER_MS)
        self._dummy_hash: str | None = None
        self._dummy_made = asyncio.Lock()  # the first unknown users wait for one dummy hash

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _run(self, key: str, work: Callable[[], T]) -> T:
        async with self._slots.slot(key):
            return await asyncio.get_running_loop().run_in_executor(self._pool, work)

    async def hash(self, password: str, key: str = "") -> str:
        """The argon2id hash of `password`; `key` (the client's address) shares the pool."""
        return await self._run(key, lambda: self._hasher.hash(password))

    async def verify(self, password_hash: str | None, password: str, key: str = "") -> bool:
        """True if `password` matches; an absent hash still costs one verification."""
        if len(password) > MAX_PASSWORD_LENGTH:
            return False
        if password_hash is None:
            password_hash = await self._dummy(key)
            password = ""  # never matches the random dummy password
        known_hash = password_hash
        try:
            return await self._run(key, lambda: self._hasher.verify(known_hash, password))
        except (VerificationError, InvalidHashError):
            return False

    async def _dummy(self, key: str) -> str:
        """The hash unknown users are checked against, made once on first need."""
        async with self._dummy_made:
            if self._dummy_hash is None:
                self._dummy_hash = await self.hash(secrets.token_urlsafe(16), key)
        return self._dummy_hash
