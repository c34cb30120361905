"""Room key backups: versions are numbered from 1 and never reused, a stored session is only
replaced by a better key, and keys are read and deleted per room and session."""

from __future__ import annotations

import asyncpg

from storage import key_backup as store
from storage.database import Database
from storage.key_backup import RoomKey

U, ALG = "@u:x", "m.megolm_backup.v1.curve25519-aes-sha2"


def key(
    session: str, index: int, forwarded: int = 0, verified: bool = False, room: str = "!r:x"
) -> RoomKey:
    return RoomKey(room, session, index, forwarded, verified, {"tag": f"{index}/{forwarded}"})


async def new_version(conn: asyncpg.Connection) -> int:
    async with conn.transaction():
        await store.lock_backups(conn, U)
        return await store.insert_version(conn, U, ALG, {"public_key": "k"})


async def test_versions_count_up_and_deleted_numbers_are_not_reused(db: Database) -> None:
    async with db.connection() as conn:
        assert await store.get_version(conn, U, None) is None
        assert [await new_version(conn) for _ in range(2)] == [1, 2]
        await store.upsert_keys(conn, U, 2, [key("s", 0)])
        assert await store.delete_version(conn, U, 2)
        assert not await store.delete_version(conn, U, 7)
        assert await store.count_user_keys(conn, U) == 0
        assert await store.get_version(conn, U, 2) is None
        latest = await store.get_version(conn, U, None)
        assert latest is not None and latest.version == 1
        assert await new_version(conn) == 3
        await store.update_auth_data(conn, U, 3, {"public_key": "new"})
        assert await store.bump_etag(conn, U, 3) == 1
        assert await store.get_version(conn, U, None) == store.BackupVersion(
            3, ALG, {"public_key": "new"}, 1
        )


async def test_a_stored_session_is_replaced_only_by_a_better_key(db: Database) -> None:
    async with db.connection() as conn:
        version = await new_version(conn)

        async def offer(candidate: RoomKey) -> RoomKey:
            await store.upsert_keys(conn, U, version, [candidate])
            (stored,) = await store.get_keys(conn, U, version, candidate.room_id, "s")
            return stored

        assert await offer(key("s", 5, 1)) == key("s", 5, 1)
        assert await offer(key("s", 6, 0)) == key("s", 5, 1)  # higher index: worse
        assert await offer(key("s", 5, 0)) == key("s", 5, 0)  # fewer forwards: better
        assert await offer(key("s", 5, 0)) == key("s", 5, 0)  # a tie keeps the stored one
        assert await offer(key("s", 9, 3, verified=True)) == key("s", 9, 3, verified=True)
        assert await offer(key("s", 0, 0)) == key("s", 9, 3, verified=True)
        assert await store.upsert_keys(conn, U, version, [key("s", 1), key("t", 1)]) == 1


async def test_keys_are_read_and_deleted_by_room_and_session(db: Database) -> None:
    async with db.connection() as conn:
        version = await new_version(conn)
        stored = [key("s2", 0, room="!a:x"), key("s1", 0, room="!a:x"), key("s1", 0, room="!b:x")]
        assert await store.upsert_keys(conn, U, version, stored) == 3

        async def ids(room: str | None, session: str | None) -> list[tuple[str, str]]:
            keys = await store.get_keys(conn, U, version, room, session)
            return [(k.room_id, k.session_id) for k in keys]

        assert await ids(None, None) == [("!a:x", "s1"), ("!a:x", "s2"), ("!b:x", "s1")]
        assert await ids("!a:x", None) == [("!a:x", "s1"), ("!a:x", "s2")]
        assert await ids("!a:x", "s2") == [("!a:x", "s2")]
        assert await store.delete_keys(conn, U, version, "!a:x", "s1") == 1
        assert await store.delete_keys(conn, U, version, "!a:x", None) == 1
        assert await store.count_keys(conn, U, version) == 1
