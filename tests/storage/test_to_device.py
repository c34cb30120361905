"""Send-to-device: retries are recognised, `*` reaches every device, and a sync
acknowledges what it was given and reads what follows in order."""

from __future__ import annotations

from storage import accounts, to_device
from storage.database import Database
from tests.storage.rows import add_user

A, B = "@a:x", "@b:x"


async def test_a_transaction_id_is_seen_once_until_it_ages_out(db: Database) -> None:
    async with db.connection() as conn:
        assert await to_device.insert_transaction(conn, A, "D", "t", 1_000, keep_ms=500)
        assert not await to_device.insert_transaction(conn, A, "D", "t", 1_400, keep_ms=500)
        assert await to_device.insert_transaction(conn, A, "OTHER", "t", 1_400, keep_ms=500)
        # Older than keep_ms: forgotten, so the same ID counts as new again.
        assert await to_device.insert_transaction(conn, A, "D", "t", 1_501, keep_ms=500)


async def test_star_reaches_every_device_and_an_explicit_entry_wins(db: Database) -> None:
    async with db.connection() as conn:
        await add_user(conn, A, "A1", "A2", "A3")
        await add_user(conn, B, "B1")
        reached = await to_device.insert_messages(conn, 1, [
            (A, "*", {"to": "all"}), (A, "A2", {"to": "A2"}), (B, "GONE", {"to": "nobody"}),
        ])
        assert reached == {A}
        for device, expected in (("A1", "all"), ("A2", "A2"), ("A3", "all")):
            pending = await to_device.ack_and_get_pending(conn, A, device, 0, 10, 10)
            assert [p.message["to"] for p in pending] == [expected]
        assert await to_device.ack_and_get_pending(conn, B, "B1", 0, 10, 10) == []


async def test_a_sync_acknowledges_and_pages_through_the_inbox(db: Database) -> None:
    async with db.connection() as conn:
        await add_user(conn, A, "D")
        for n in range(1, 6):
            await to_device.insert_messages(conn, n * 10, [(A, "D", {"n": n})])

        async def sync(acked: int, upto: int, limit: int) -> list[tuple[int, int]]:
            got = await to_device.ack_and_get_pending(conn, A, "D", acked, upto, limit)
            return [(p.stream_id, p.message["n"]) for p in got]

        assert await sync(0, 40, 2) == [(10, 1), (20, 2)]
        # The next sync acknowledges 20: those two are gone, 30 and 40 follow; 50 is past upto.
        assert await sync(20, 40, 10) == [(30, 3), (40, 4)]
        assert await sync(0, 100, 10) == [(30, 3), (40, 4), (50, 5)]
        assert await sync(50, 100, 10) == []
        assert await conn.fetchval("SELECT count(*) FROM to_device_inbox") == 0

        # Logging the device out empties its inbox.
        await to_device.insert_messages(conn, 60, [(A, "D", {"n": 6})])
        await accounts.delete_devices(conn, A, ["D"])
        assert await conn.fetchval("SELECT count(*) FROM to_device_inbox") == 0
