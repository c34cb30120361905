"""The `account_data` table: upserts, the change stream /sync reads and the ignore list."""

from __future__ import annotations

from typing import Any

from storage import account_data as store
from storage.account_data import AccountData
from storage.database import Database

U = "@u:x"


async def test_changes_are_the_latest_write_per_entry_in_the_window(db: Database) -> None:
    async with db.connection() as conn:
        await store.upsert_account_data(conn, U, "", "m.a", {"v": 1}, 1)
        await store.upsert_account_data(conn, U, "!r:x", "m.a", {"v": 2}, 2)
        await store.upsert_account_data(conn, "@other:x", "", "m.a", {"v": 3}, 3)
        await store.upsert_account_data(conn, U, "", "m.a", {"v": 4}, 4)  # rewrites entry 1

        assert await store.get_account_data(conn, U, "", "m.a") == {"v": 4}
        assert await store.get_account_data(conn, U, "!r:x", "m.a") == {"v": 2}
        assert await store.get_account_data(conn, U, "", "m.missing") is None
        assert await store.get_account_data_changes(conn, U, 0, 10) == [
            AccountData("!r:x", "m.a", {"v": 2}, 2), AccountData("", "m.a", {"v": 4}, 4),
        ]
        # (after, upto]: the lower bound is exclusive, the upper inclusive.
        assert await store.get_account_data_changes(conn, U, 2, 4) == [
            AccountData("", "m.a", {"v": 4}, 4)
        ]
        assert await store.get_account_data_changes(conn, U, 0, 3) == [
            AccountData("!r:x", "m.a", {"v": 2}, 2)
        ]


async def test_count_if_new_counts_only_for_an_entry_not_yet_held(db: Database) -> None:
    async with db.connection() as conn:
        assert await store.count_account_data_if_new(conn, U, "", "m.a") == 0
        await store.upsert_account_data(conn, U, "", "m.a", {}, 1)
        await store.upsert_account_data(conn, U, "!r:x", "m.a", {}, 2)
        assert await store.count_account_data_if_new(conn, U, "", "m.a") is None
        assert await store.count_account_data_if_new(conn, U, "", "m.b") == 2
        assert await store.count_account_data_if_new(conn, "@other:x", "", "m.a") == 0


async def test_global_entries_of_many_users_are_read_at_once(db: Database) -> None:
    lists: dict[str, tuple[str, dict[str, Any]]] = {
        "@a:x": ("", {"ignored_users": {"@spam:x": {}}}),
        "@b:x": ("", {"ignored_users": [1]}),  # stored as written: the caller judges it
        "@c:x": ("!r:x", {"ignored_users": {"@spam:x": {}}}),  # per room: not global
    }
    async with db.connection() as conn:
        for n, (user, (room, content)) in enumerate(lists.items()):
            await store.upsert_account_data(conn, user, room, "m.ignored_user_list", content, n)
        await store.upsert_account_data(conn, "@a:x", "", "m.other", {}, 9)
        found = await store.get_global_account_data_of_users(
            conn, [*lists, "@e:x"], "m.ignored_user_list"
        )
        assert found == {"@a:x": lists["@a:x"][1], "@b:x": lists["@b:x"][1]}
