"""The `presence` table: changes by stream position to the users who share a room, the idle
sweep's candidates, and activity that is not a change."""

from __future__ import annotations

import asyncpg

from storage import accounts
from storage import presence as store
from storage.database import Database
from tests.storage.rows import add_user, set_membership

ME, MATE, STRANGER = "@me:x", "@mate:x", "@stranger:x"


async def put(
    conn: asyncpg.Connection, user: str, state: str, active: int, stream: int
) -> None:
    await store.upsert_presence(conn, user, state, None, active, stream)


async def test_changes_reach_roommates_with_their_profile(db: Database) -> None:
    async with db.connection() as conn:
        await add_user(conn, MATE)
        await accounts.insert_profile(conn, MATE, "Mate")
        await set_membership(conn, "!r:x", ME, "join", stream=1)
        await set_membership(conn, "!r:x", MATE, "join", stream=2)
        await set_membership(conn, "!s:x", STRANGER, "join", stream=3)
        await put(conn, ME, "online", 10, 1)
        await put(conn, STRANGER, "online", 10, 2)
        await put(conn, MATE, "unavailable", 10, 3)

        changes = await store.get_changes_for_roommates(conn, ME, 0, 3)
        assert [(p.user_id, p.state, p.displayname) for p in changes] == [
            (ME, "online", None), (MATE, "unavailable", "Mate")
        ]
        assert await store.get_changes_for_roommates(conn, ME, 1, 2) == []
        assert await store.get_roommates(conn, ME) == {ME, MATE}
        assert await store.shares_room(conn, ME, MATE)
        assert not await store.shares_room(conn, ME, STRANGER)
        # The state as of a sync position: a change after it is the next sync's.
        assert [p.user_id for p in await store.get_presence_of(conn, [ME, MATE], 2)] == [ME]


async def test_activity_moves_without_a_stream_position(db: Database) -> None:
    async with db.connection() as conn:
        await put(conn, ME, "online", 10, 1)
        await store.touch_presence(conn, ME, 50)
        row = await store.get_presence(conn, ME)
        assert row is not None and (row.last_active_ts, row.stream_id) == (50, 1)
        assert await store.get_presence(conn, MATE) is None


async def test_idle_users_are_found_oldest_first_and_set_offline_once(db: Database) -> None:
    async with db.connection() as conn:
        await put(conn, "@a:x", "online", 30, 1)
        await put(conn, "@b:x", "unavailable", 10, 2)
        await put(conn, "@c:x", "offline", 5, 3)
        await put(conn, "@d:x", "online", 100, 4)
        await put(conn, "@e:x", "online", 20, 5)
        assert await store.get_idle_users(conn, 100, 10) == ["@b:x", "@e:x", "@a:x"]
        assert await store.get_idle_users(conn, 100, 2) == ["@b:x", "@e:x"]

        async with conn.transaction():
            assert await store.lock_if_idle(conn, "@b:x", 100)
            await store.set_offline(conn, "@b:x", 6)
        # Offline now, or active since: no longer idle.
        assert not await store.lock_if_idle(conn, "@b:x", 100)
        assert not await store.lock_if_idle(conn, "@d:x", 100)
        row = await store.get_presence(conn, "@b:x")
        assert row is not None and (row.state, row.stream_id) == ("offline", 6)
