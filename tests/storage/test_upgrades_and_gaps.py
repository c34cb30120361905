"""What room upgrades and jump to date ask of storage: every alias of a room moved to its
successor at once, and whether an event has a gap before it (a prev event missing or held only
as an outlier)."""

from __future__ import annotations

from storage import event_graph as graph
from storage import rooms
from storage.database import Database
from tests.storage.rows import add_room, event, insert

R = "!r:x"


async def test_a_rooms_aliases_move_to_its_successor(db: Database) -> None:
    async with db.connection() as conn:
        for room_id in ("!old:x", "!new:x", "!other:x"):
            await add_room(conn, room_id)
        for alias in ("#b:x", "#a:x"):
            assert await rooms.insert_alias(conn, alias, "!old:x", "@u:x")
        assert await rooms.insert_alias(conn, "#c:x", "!other:x", "@u:x")
        assert await rooms.move_aliases(conn, "!old:x", "!new:x") == ["#a:x", "#b:x"]
        assert await rooms.get_aliases_for_room(conn, "!old:x") == []
        assert await rooms.get_aliases_for_room(conn, "!new:x") == ["#a:x", "#b:x"]
        assert await rooms.get_aliases_for_room(conn, "!other:x") == ["#c:x"]
        assert tuple(await rooms.get_alias(conn, "#a:x") or ()) == ("!new:x", "@u:x")
        assert await rooms.move_aliases(conn, "!old:x", "!new:x") == []


async def test_an_event_with_a_prev_event_not_held_is_next_to_a_gap(db: Database) -> None:
    async with db.connection() as conn:
        await insert(
            conn,
            event("$first", R, stream=1),
            event("$second", R, stream=2, prev=["$first"]),
            event("$outlier", R, stream=None, outlier=True),
            event("$after_outlier", R, stream=3, prev=["$outlier"]),
            event("$after_gap", R, stream=4, prev=["$unknown", "$second"]),
        )
        assert not await graph.has_missing_prev_events(conn, "$first")
        assert not await graph.has_missing_prev_events(conn, "$second")
        assert await graph.has_missing_prev_events(conn, "$after_outlier")
        assert await graph.has_missing_prev_events(conn, "$after_gap")
