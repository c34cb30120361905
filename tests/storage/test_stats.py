"""The operator gauges' counts: deactivated accounts are not users any more; the room with the
most forward extremities gives their maximum."""

from __future__ import annotations

from storage import accounts, stats
from storage import events as events_store
from storage.database import Database
from tests.storage.rows import add_room, add_user


async def test_counts_leave_out_deactivated_users(db: Database) -> None:
    async with db.connection() as conn:
        assert await stats.get_counts(conn) == {
            "users": 0, "rooms": 0, "devices": 0, "forward_extremities_max": 0,
        }
        await add_user(conn, "@a:x", "A1", "A2")
        await add_user(conn, "@b:x", "B1")
        await add_user(conn, "@gone:x")
        await accounts.deactivate_user(conn, "@gone:x")
        await add_room(conn, "!r:x")
        assert await stats.get_counts(conn) == {
            "users": 2, "rooms": 1, "devices": 3, "forward_extremities_max": 0,
        }


async def test_forward_extremities_max_is_that_of_the_most_forked_room(db: Database) -> None:
    async with db.connection() as conn:
        for event_id in ("$a1", "$a2", "$a3"):
            await events_store.replace_forward_extremities(conn, "!a:x", [], event_id)
        await events_store.replace_forward_extremities(conn, "!b:x", [], "$b1")
        assert (await stats.get_counts(conn))["forward_extremities_max"] == 3
        await events_store.replace_forward_extremities(conn, "!a:x", ["$a1", "$a2"], "$a4")
        assert (await stats.get_counts(conn))["forward_extremities_max"] == 2
