"""The operator gauges' counts: deactivated accounts are not users any more."""

from __future__ import annotations

from storage import accounts, stats
from storage.database import Database
from tests.storage.rows import add_room, add_user


async def test_counts_leave_out_deactivated_users(db: Database) -> None:
    async with db.connection() as conn:
        assert await stats.get_counts(conn) == {"users": 0, "rooms": 0, "devices": 0}
        await add_user(conn, "@a:x", "A1", "A2")
        await add_user(conn, "@b:x", "B1")
        await add_user(conn, "@gone:x")
        await accounts.deactivate_user(conn, "@gone:x")
        await add_room(conn, "!r:x")
        assert await stats.get_counts(conn) == {"users": 2, "rooms": 1, "devices": 3}
