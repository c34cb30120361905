"""The device-list stream and the membership reads that decide who hears of a change."""

from __future__ import annotations

import asyncpg

from storage import device_lists as store
from storage.database import Database
from tests.storage.rows import insert, member, set_membership

ME, MATE, STRANGER, INVITED = "@me:x", "@mate:x", "@stranger:x", "@invited:x"


async def rooms_with_members(conn: asyncpg.Connection) -> None:
    """!shared: ME and MATE joined, INVITED invited. !other: STRANGER alone."""
    for stream, (room, user, membership) in enumerate([
        ("!shared:x", ME, "join"), ("!shared:x", MATE, "join"),
        ("!shared:x", INVITED, "invite"), ("!other:x", STRANGER, "join"),
    ], start=1):
        await set_membership(conn, room, user, membership, stream=stream)


async def test_changes_reach_the_user_and_those_sharing_a_joined_room(db: Database) -> None:
    async with db.connection() as conn:
        await rooms_with_members(conn)
        for stream, user in enumerate([ME, MATE, STRANGER, INVITED, MATE], start=1):
            await store.insert_change(conn, stream, user)
        assert await store.get_changed_users_sharing(conn, ME, 0, 5) == {ME, MATE}
        assert await store.get_changed_users_sharing(conn, ME, 1, 4) == {MATE}
        assert await store.get_changed_users_sharing(conn, ME, 2, 4) == set()
        assert await store.get_changed_users_sharing(conn, STRANGER, 0, 5) == {STRANGER}
        assert await store.get_latest_change(conn, MATE) == 5
        assert await store.get_latest_change(conn, "@silent:x") == 0
        assert await store.get_users_sharing_room(conn, ME) == {ME, MATE}
        assert await store.get_users_sharing_room(conn, INVITED) == set()
        assert await store.get_joined_users_in_rooms(conn, ["!shared:x", "!other:x"]) == {
            ME, MATE, STRANGER
        }


async def test_membership_changes_are_the_latest_valid_one_per_member(db: Database) -> None:
    async with db.connection() as conn:
        await set_membership(conn, "!r:x", ME, "join", stream=1)
        await insert(
            conn,
            member("$j", "!r:x", MATE, "join", stream=2),
            member("$l", "!r:x", MATE, "leave", stream=3),
            member("$refused", "!r:x", MATE, "join", stream=4, rejected=True),
            member("$soft", "!r:x", MATE, "join", stream=5, soft_failed=True),
            member("$elsewhere", "!not-mine:x", MATE, "join", stream=6),
        )
        rows = await store.get_membership_changes_in_rooms_of(conn, ME, 1, 10)
        assert [tuple(r) for r in rows] == [("!r:x", MATE, "leave")]
        rows = await store.get_membership_changes_in_rooms_of(conn, ME, 0, 2)
        assert sorted(tuple(r) for r in rows) == [("!r:x", MATE, "join"), ("!r:x", ME, "join")]


async def test_remote_stream_position_is_overwritten(db: Database) -> None:
    async with db.connection() as conn:
        assert await store.get_remote_stream(conn, "@r:remote") is None
        await store.upsert_remote_stream(conn, "@r:remote", 7)
        await store.upsert_remote_stream(conn, "@r:remote", 3)  # last write wins
        assert await store.get_remote_stream(conn, "@r:remote") == 3
