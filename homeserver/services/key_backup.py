"""Server-side key backups (Client-Server API "Server-side key backups"): versions and keys.

The server stores what clients encrypted for themselves and never looks inside `auth_data` or
`session_data` beyond their shape. Keys may only be written to the current (latest live)
version; an older version answers 403 M_WRONG_ROOM_KEYS_VERSION naming the current one, so a
client that missed a new backup finds out. Every writer holds the user's backup lock for its
transaction, which makes "check the version, then write" atomic. A user stores at most
`quotas.max_backup_keys_per_user` keys across their versions; a write past it stores nothing.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from homeserver.config import QuotasConfig
from homeserver.errors import MatrixError, invalid_param, not_found
from homeserver.services.quotas import over_quota
from storage import key_backup as store
from storage.database import Database
from storage.key_backup import BackupVersion
from storage.key_backup import RoomKey as RoomKey  # re-exported: routes build these, not storage

CURVE25519_AES_SHA2 = "m.megolm_backup.v1.curve25519-aes-sha2"
MAX_VERSION = 2**63 - 1  # versions are PostgreSQL bigints


def parse_version(version: str) -> int | None:
    """The number of a version string we handed out, or None for anything else."""
    if not version.isascii() or not version.isdigit() or len(version) > 19:
        return None
    number = int(version)
    return number if 0 < number <= MAX_VERSION else None


def check_backup_config(algorithm: str, auth_data: dict[str, Any]) -> None:
    """Refuse `auth_data` that cannot belong to an algorithm we know. Any other algorithm takes
    any object (as Synapse does): the backup is the clients' to interpret."""
    if algorithm == CURVE25519_AES_SHA2 and not isinstance(auth_data.get("public_key"), str):
        raise invalid_param("auth_data.public_key must be a string for this algorithm")


def _unknown_version() -> MatrixError:
    return not_found("Unknown backup version")


def _updated(etag: int, count: int) -> dict[str, Any]:
    """The RoomKeysUpdateResponse body."""
    return {"etag": str(etag), "count": count}


class KeyBackupService:
    def __init__(self, db: Database, quotas: QuotasConfig) -> None:
        self.db = db
        self.max_keys = quotas.max_backup_keys_per_user

    async def create_version(
        self, user_id: str, algorithm: str, auth_data: dict[str, Any]
    ) -> str:
        """A new backup version, which becomes the current one."""
        check_backup_config(algorithm, auth_data)

        async def create(conn: asyncpg.Connection) -> int:
            await store.lock_backups(conn, user_id)
            return await store.insert_version(conn, user_id, algorithm, auth_data)

        return str(await self.db.transaction(create, name="room_keys_create_version"))

    async def get_version(self, user_id: str, version: str | None) -> dict[str, Any]:
        """The version's description with `count` and `etag`; the latest when `version` is None."""
        number = None if version is None else parse_version(version)
        if version is not None and number is None:
            raise _unknown_version()
        async with self.db.connection() as conn:
            info = await store.get_version(conn, user_id, number)
            if info is None:
                raise not_found("No current backup version" if version is None else
                                "Unknown backup version")
            count = await store.count_keys(conn, user_id, info.version)
        return {
            "algorithm": info.algorithm, "auth_data": info.auth_data,
            "version": str(info.version), "count": count, "etag": str(info.etag),
        }

    async def update_version(
        self, user_id: str, version: str, algorithm: str, auth_data: dict[str, Any],
        body_version: str | None,
    ) -> None:
        """Replace `auth_data`; the algorithm (and the version, if given) must match."""
        if body_version is not None and body_version != version:
            raise invalid_param("The version in the body does not match the path")
        number = parse_version(version)
        if number is None:
            raise _unknown_version()

        async def update(conn: asyncpg.Connection) -> None:
            await store.lock_backups(conn, user_id)
            info = await store.get_version(conn, user_id, number)
            if info is None:
                raise _unknown_version()
            if info.algorithm != algorithm:
                raise invalid_param("Algorithm does not match")
            check_backup_config(algorithm, auth_data)
            await store.update_auth_data(conn, user_id, number, auth_data)

        await self.db.transaction(update, name="room_keys_update_version")

    async def delete_version(self, user_id: str, version: str) -> None:
        """Delete the version and its keys; deleting it again succeeds."""
        number = parse_version(version)
        if number is None:
            raise _unknown_version()

        async def delete(conn: asyncpg.Connection) -> bool:
            await store.lock_backups(conn, user_id)
            return await store.delete_version(conn, user_id, number)

        if not await self.db.transaction(delete, name="room_keys_delete_version"):
            raise _unknown_version()

    async def put_keys(self, user_id: str, version: str, keys: list[RoomKey]) -> dict[str, Any]:
        """Store keys in the current version under the spec's replacement rules."""

        async def put(conn: asyncpg.Connection) -> dict[str, Any]:
            await store.lock_backups(conn, user_id)
            current = await store.get_version(conn, user_id, None)
            if current is None:
                raise _unknown_version()
            if parse_version(version) != current.version:
                raise MatrixError(
                    403, "M_WRONG_ROOM_KEYS_VERSION", "Wrong backup version.",
                    current_version=str(current.version),
                )
            etag = current.etag
            if keys and await store.upsert_keys(conn, user_id, current.version, keys):
                if await store.count_user_keys(conn, user_id) > self.max_keys:
                    raise over_quota("backed-up room keys per user", self.max_keys)
                etag = await store.bump_etag(conn, user_id, current.version)
            return _updated(etag, await store.count_keys(conn, user_id, current.version))

        return await self.db.transaction(put, name="room_keys_put")

    async def get_keys(
        self, user_id: str, version: str, room_id: str | None, session_id: str | None
    ) -> list[RoomKey]:
        """The stored keys of a version (any live one), of one room, or of one session."""
        async with self.db.connection() as conn:
            info = await self._live_version(conn, user_id, version)
            return await store.get_keys(conn, user_id, info.version, room_id, session_id)

    async def delete_keys(
        self, user_id: str, version: str, room_id: str | None, session_id: str | None
    ) -> dict[str, Any]:
        """Delete the keys of a version, of one room, or of one session."""

        async def delete(conn: asyncpg.Connection) -> dict[str, Any]:
            await store.lock_backups(conn, user_id)
            info = await self._live_version(conn, user_id, version)
            etag = info.etag
            if await store.delete_keys(conn, user_id, info.version, room_id, session_id):
                etag = await store.bump_etag(conn, user_id, info.version)
            return _updated(etag, await store.count_keys(conn, user_id, info.version))

        return await self.db.transaction(delete, name="room_keys_delete")

    @staticmethod
    async def _live_version(
        conn: asyncpg.Connection, user_id: str, version: str
    ) -> BackupVersion:
        number = parse_version(version)
        info = None if number is None else await store.get_version(conn, user_id, number)
        if info is None:
            raise _unknown_version()
        return info
