"""Profiles and the queue of member events behind them: a whole profile is replaced at once,
and a queue entry outlives a pass that did not see the latest change."""

from __future__ import annotations

from storage import accounts, profiles
from storage.database import Database
from tests.storage.rows import add_user

U = "@u:x"


async def test_the_whole_profile_is_replaced(db: Database) -> None:
    async with db.connection() as conn:
        await add_user(conn, U)
        await accounts.insert_profile(conn, U, "Ursula")
        row = await profiles.get_profile(conn, U)
        assert row is not None and dict(row) == {
            "displayname": "Ursula", "avatar_url": None, "fields": {}
        }
        await profiles.update_profile(conn, U, None, "mxc://x/a", {"m.tz": "UTC", "a.b": [1]})
        row = await profiles.get_profile(conn, U)
        assert row is not None and dict(row) == {
            "displayname": None, "avatar_url": "mxc://x/a", "fields": {"m.tz": "UTC", "a.b": [1]}
        }
        assert await profiles.get_profile(conn, "@nobody:x") is None


async def test_a_change_during_a_pass_keeps_the_queue_entry(db: Database) -> None:
    async with db.connection() as conn:
        await add_user(conn, U)
        await profiles.queue_member_update(conn, U, 1)
        [entry] = await profiles.get_member_updates(conn, 10)
        await profiles.queue_member_update(conn, U, 2)  # a change while the pass runs
        assert not await profiles.delete_member_update(conn, U, entry["generation"])
        [again] = await profiles.get_member_updates(conn, 10)
        assert again["generation"] == entry["generation"] + 1
        assert await profiles.delete_member_update(conn, U, again["generation"])
        assert await profiles.get_member_updates(conn, 10) == []
