"""Other servers' users' keys kept for /keys/query while their server is down: which users
qualify (joined to a room a local user is joined to) and the kept answer, overwritten."""

from __future__ import annotations

from storage import remote_device_keys as store
from storage.database import Database
from tests.storage.rows import add_user, set_membership

LOCAL, MATE, INVITED, STRANGER = "@me:here", "@mate:far", "@invited:far", "@stranger:far"


async def test_only_users_sharing_a_joined_room_with_a_local_user_qualify(db: Database) -> None:
    async with db.connection() as conn:
        await add_user(conn, LOCAL)
        for stream, (room, user, membership) in enumerate([
            ("!shared:here", LOCAL, "join"), ("!shared:here", MATE, "join"),
            ("!shared:here", INVITED, "invite"), ("!far:far", STRANGER, "join"),
            ("!far:far", MATE, "join"), ("!left:here", LOCAL, "leave"),
            ("!left:here", STRANGER, "join"),
        ], start=1):
            await set_membership(conn, room, user, membership, stream=stream)
        assert await store.get_users_sharing_with_local(
            conn, [MATE, INVITED, STRANGER, "@nobody:far"]
        ) == {MATE}


async def test_the_kept_answer_is_overwritten(db: Database) -> None:
    async with db.connection() as conn:
        assert await store.get_keys(conn, [MATE]) == {}
        await store.upsert_keys(conn, MATE, {"device_keys": {"A": {"k": 1}}}, 1)
        await store.upsert_keys(conn, MATE, {"device_keys": {"B": {"k": 2}}}, 2)
        assert await store.get_keys(conn, [MATE, STRANGER]) == {
            MATE: {"device_keys": {"B": {"k": 2}}}
        }
