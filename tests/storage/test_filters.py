"""The `filters` table: a filter comes back only to its owner, under the ID it was given."""

from __future__ import annotations

from storage import filters
from storage.database import Database


async def test_filters_are_per_user_with_distinct_ids(db: Database) -> None:
    async with db.connection() as conn:
        first = await filters.insert_filter(conn, "@a:x", {"room": {"timeline": {"limit": 5}}})
        second = await filters.insert_filter(conn, "@a:x", {"presence": {"types": []}})
        other = await filters.insert_filter(conn, "@b:x", {})
        assert len({first, second, other}) == 3
        assert await filters.get_filter(conn, "@a:x", first) == {
            "room": {"timeline": {"limit": 5}}
        }
        assert await filters.get_filter(conn, "@a:x", second) == {"presence": {"types": []}}
        # Another user's filter ID names nothing for this user.
        assert await filters.get_filter(conn, "@a:x", other) is None
        assert await filters.get_filter(conn, "@b:x", first) is None
        assert await filters.count_filters(conn, "@a:x") == 2
        assert await filters.count_filters(conn, "@nobody:x") == 0
