"""The room directory and the user directory: ordering, paging and filters of published
rooms, and who a user may find."""

from __future__ import annotations

from typing import Any

import asyncpg

from storage import accounts, directory
from storage.database import Database
from tests.storage.rows import add_room, add_user, set_membership, set_state


class Positions:
    """Hands out stream positions so that each helper call writes distinct events."""

    def __init__(self) -> None:
        self.last = 0

    def __call__(self) -> int:
        self.last += 1
        return self.last


async def published_room(
    conn: asyncpg.Connection, at: Positions, room: str, members: int, **state: dict[str, Any]
) -> None:
    """A published room with `members` joined users and state given as type suffix -> content
    (name={"name": ...} is m.room.name)."""
    await add_room(conn, room, is_public=True)
    for n in range(members):
        await set_membership(conn, room, f"@m{n}:x", "join", stream=at())
    for suffix, content in state.items():
        await set_state(conn, room, f"m.room.{suffix}", content, stream=at())


async def listing(conn: asyncpg.Connection, **query: Any) -> list[tuple[str, int, int]]:
    """(room, joined, total) of a directory page; unbounded unless asked."""
    args: dict[str, Any] = {
        "pattern": None, "room_types": None, "include_untyped": False, "limit": 100,
        "offset": 0, **query,
    }
    rows = await directory.get_public_rooms(conn, **args)
    return [(r["room_id"], r["joined"], r["total"]) for r in rows]


async def test_published_rooms_page_by_size_then_id_with_their_state(db: Database) -> None:
    at = Positions()
    async with db.connection() as conn:
        await published_room(conn, at, "!b:x", 2, name={"name": "Bees"})
        await published_room(conn, at, "!a:x", 2, topic={"topic": "Apples"})
        await published_room(conn, at, "!c:x", 3)
        await add_room(conn, "!hidden:x")
        assert await listing(conn) == [("!c:x", 3, 3), ("!a:x", 2, 3), ("!b:x", 2, 3)]
        assert await listing(conn, limit=1, offset=1) == [("!a:x", 2, 3)]
        assert await listing(conn, offset=3) == []
        (bees,) = await directory.get_public_rooms(
            conn, pattern=None, room_types=None, include_untyped=False, limit=1, offset=2
        )
        assert bees["state"] == {"m.room.name": {"name": "Bees"}}

        await directory.set_room_visibility(conn, "!c:x", False)
        assert await directory.get_room_visibility(conn, "!c:x") is False
        assert await directory.get_room_visibility(conn, "!unknown:x") is None
        assert [r[0] for r in await listing(conn)] == ["!a:x", "!b:x"]


async def test_search_terms_and_room_types_filter_the_listing(db: Database) -> None:
    at = Positions()
    async with db.connection() as conn:
        await published_room(conn, at, "!pct:x", 1, name={"name": "50% off"})
        await published_room(conn, at, "!num:x", 1, name={"name": "500 club"})
        await published_room(conn, at, "!space:x", 1, create={"type": "m.space"},
                             canonical_alias={"alias": "#Club:x"})
        # The term is literal (% is not a wildcard) and matches regardless of case.
        assert await listing(conn, pattern=directory.like_pattern("50%")) == [("!pct:x", 1, 1)]
        found = await listing(conn, pattern=directory.like_pattern("CLUB"))
        assert [r[0] for r in found] == ["!num:x", "!space:x"]
        spaces = await listing(conn, room_types=["m.space"])
        assert [r[0] for r in spaces] == ["!space:x"]
        untyped = await listing(conn, room_types=[], include_untyped=True)
        assert [r[0] for r in untyped] == ["!num:x", "!pct:x"]


async def test_state_postgresql_cannot_read_does_not_break_the_listing(db: Database) -> None:
    async with db.connection() as conn:
        await add_room(conn, "!r:x", is_public=True)
        await set_state(
            conn, "!r:x", "m.room.name", {}, stream=1,
            json_text='{"type": "m.room.name", "content": {"name": "nul \\u0000"}}',
        )
        (row,) = await directory.get_public_rooms(
            conn, pattern=None, room_types=None, include_untyped=False, limit=10, offset=0
        )
        assert row["state"] == {"m.room.name": {}}


async def user_in(conn: asyncpg.Connection, at: Positions, user: str, room: str) -> None:
    await set_membership(conn, room, user, "join", stream=at())


async def test_users_are_found_through_shared_or_public_rooms(db: Database) -> None:
    at = Positions()
    me = "@me:x"
    async with db.connection() as conn:
        for user, name in [("@alice:x", "Zed"), ("@bob:x", "Alice B"), ("@carol:x", None)]:
            await add_user(conn, user)
            await accounts.insert_profile(conn, user, name)
        await add_user(conn, "@alicia:x")
        await accounts.deactivate_user(conn, "@alicia:x")
        for user in (me, "@alice:x", "@alicia:x"):
            await user_in(conn, at, user, "!shared:x")
        await user_in(conn, at, "@bob:x", "!public:x")
        await set_state(conn, "!public:x", "m.room.join_rules", {"join_rule": "public"},
                        stream=at())
        await user_in(conn, at, "@carol:x", "!private:x")

        async def found(term: str, limit: int = 10) -> list[str]:
            return [r["user_id"] for r in await directory.search_users(conn, me, term, limit)]

        # A user ID or display name starting with the term first; then named users; then ID.
        assert await found("ali") == ["@alice:x", "@bob:x"]
        assert await found("zed") == ["@alice:x"]
        assert await found("b") == ["@bob:x"]
        assert await found("carol") == []  # shares no room, and theirs is private
        assert await found("ali", limit=1) == ["@alice:x"]


async def test_a_user_without_a_profile_does_not_jump_ahead_of_prefix_matches(
    db: Database,
) -> None:
    """Another server's user has no `profiles` row here: their missing display name must
    rank as "no match", not above every prefix match (NULL sorts first in DESC order)."""
    at = Positions()
    async with db.connection() as conn:
        await add_user(conn, "@alice:x")
        await accounts.insert_profile(conn, "@alice:x", None)
        for user in ("@me:x", "@alice:x", "@natalie:remote"):
            await user_in(conn, at, user, "!shared:x")
        results = await directory.search_users(conn, "@me:x", "ali", 10)
        assert [r["user_id"] for r in results] == ["@alice:x", "@natalie:remote"]
