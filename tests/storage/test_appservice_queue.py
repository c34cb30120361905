"""The application-service queue tables: one order for events and ephemeral data per
appservice, a claimed transaction numbered, stored whole and taken off the queue in one step,
txnIds that never repeat, the stored backoff, and the backlog a restart resumes."""

from __future__ import annotations

import asyncpg

from storage import appservice_queue as queue
from storage import events as events_store
from storage.appservice_queue import DeliveryState
from storage.database import Database
from tests.storage.rows import numbered_event


async def test_events_and_ephemeral_data_share_one_order_per_appservice(db: Database) -> None:
    async def txn(conn: asyncpg.Connection) -> None:
        await events_store.insert_events(conn, [numbered_event("!r:x", n) for n in range(3)])
        await queue.insert_events(conn, [("a", "$e0"), ("b", "$e0"), ("a", "$e1")])
        await queue.insert_ephemeral(conn, ["a"], {"type": "m.typing"})
        await queue.insert_events(conn, [("a", "$e2")])

    await db.transaction(txn)
    async with db.connection() as conn:
        items = await queue.get_queued(conn, "a", 10)
        assert [(i.event_id, i.ephemeral) for i in items] == [
            ("$e0", None), ("$e1", None), (None, {"type": "m.typing"}), ("$e2", None)
        ]
        assert [i.event_id for i in await queue.get_queued(conn, "b", 10)] == ["$e0"]
        assert len(await queue.get_queued(conn, "a", 2)) == 2


async def test_a_claimed_transaction_stays_until_completed_and_ids_never_repeat(
    db: Database
) -> None:
    async with db.connection() as conn:
        for n in range(4):
            await queue.insert_ephemeral(conn, ["a"], {"n": n})
        items = await queue.get_queued(conn, "a", 10)
        first = await queue.claim_txn(
            conn, "a", [i.position for i in items[:2]], '{"events":[]}', events=0, ephemeral=2,
            oldest_ts=items[0].enqueued_ts,
        )
        assert first.txn_id == 1
        # Its rows left the queue; it is what the appservice is owed first.
        assert [i.ephemeral for i in await queue.get_queued(conn, "a", 10)] == [{"n": 2}, {"n": 3}]
        assert await queue.get_pending_txn(conn, "a") == first
        backlog = (await queue.get_backlogs(conn))["a"]
        assert (backlog.items, backlog.oldest_ts) == (4, items[0].enqueued_ts)

        await queue.set_delivery_state(conn, "a", DeliveryState(3, 12345))
        assert (await queue.get_delivery_states(conn))["a"] == DeliveryState(3, 12345)
        await queue.complete_txn(conn, "a", first.txn_id, now_ms=99)
        assert await queue.get_pending_txn(conn, "a") is None
        assert (await queue.get_delivery_states(conn))["a"] == DeliveryState(0, None)
        rest = await queue.get_queued(conn, "a", 10)
        second = await queue.claim_txn(
            conn, "a", [i.position for i in rest], "{}", events=0, ephemeral=2,
            oldest_ts=rest[0].enqueued_ts,
        )
        assert second.txn_id == 2
        await queue.complete_txn(conn, "a", second.txn_id, now_ms=100)
        assert await queue.get_backlogs(conn) == {}


async def test_a_row_committed_late_with_a_smaller_position_stays_queued(db: Database) -> None:
    # Positions are handed out at insert, so a transaction that inserted first can commit
    # after a later one; its row is in no body claimed meanwhile and must not be taken.
    async with db.connection() as slow, db.connection() as conn:
        late = slow.transaction()
        await late.start()
        await queue.insert_ephemeral(slow, ["a"], {"n": "late"})
        await queue.insert_ephemeral(conn, ["a"], {"n": "early"})
        items = await queue.get_queued(conn, "a", 10)
        assert [i.ephemeral for i in items] == [{"n": "early"}]
        await late.commit()
        await queue.claim_txn(
            conn, "a", [i.position for i in items], "{}", events=0, ephemeral=1,
            oldest_ts=items[0].enqueued_ts,
        )
        assert [i.ephemeral for i in await queue.get_queued(conn, "a", 10)] == [{"n": "late"}]
