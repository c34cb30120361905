"""The outbound federation queue tables: order, the spec's batch limits, per-destination
isolation, depths and the stored backoff state."""

from __future__ import annotations

import json
from collections.abc import Sequence

import asyncpg
import pytest

from storage import events as events_store
from storage import outbox
from storage.database import Database
from storage.outbox import DestinationState
from tests.storage.rows import numbered_event

A, B = "a.example", "b.example"


async def queue_pdus(db: Database, rows: Sequence[tuple[str, int]]) -> None:
    """Store events $e<n> and queue them for their destinations, in one transaction."""
    async def txn(conn: asyncpg.Connection) -> None:
        numbers = sorted({n for _, n in rows})
        await events_store.insert_events(conn, [numbered_event("!r:x", n) for n in numbers])
        await outbox.insert_pdus(conn, [(d, f"$e{n}") for d, n in rows])

    await db.transaction(txn)


async def test_batches_come_out_in_order_within_the_spec_limits(db: Database) -> None:
    await queue_pdus(db, [(A, n) for n in range(120)])
    async with db.connection() as conn:
        for n in range(130):
            await outbox.insert_edus(conn, [A], "m.typing", {"n": n})
        batch = await outbox.get_batch(conn, A)
        assert [p.event_id for p in batch.pdus] == [f"$e{n}" for n in range(50)]
        assert [json.loads(p.json)["content"]["n"] for p in batch.pdus] == list(range(50))
        assert [(e.edu_type, e.content) for e in batch.edus] == [
            ("m.typing", {"n": n}) for n in range(100)
        ]
        assert await outbox.get_queue_depths(conn) == {A: 250}

        await outbox.delete_batch(conn, A, batch)
        batch = await outbox.get_batch(conn, A)
        assert [p.event_id for p in batch.pdus] == [f"$e{n}" for n in range(50, 100)]
        assert [e.content["n"] for e in batch.edus] == list(range(100, 130))
        assert await outbox.get_queue_depths(conn) == {A: 100}

        await outbox.delete_batch(conn, A, batch)
        batch = await outbox.get_batch(conn, A)
        assert [p.event_id for p in batch.pdus] == [f"$e{n}" for n in range(100, 120)]
        assert batch.edus == []
        await outbox.delete_batch(conn, A, batch)
        assert not await outbox.get_batch(conn, A)
        assert await outbox.get_queue_depths(conn) == {}


async def test_destinations_are_independent(db: Database) -> None:
    """One event queued for two servers is two rows: delivering to one leaves the other's."""
    await queue_pdus(db, [(A, 1), (B, 1), (B, 2), (A, 3)])
    async with db.connection() as conn:
        await outbox.insert_edus(conn, [A, B], "m.presence", {"push": []})
        assert await outbox.get_queue_depths(conn) == {A: 3, B: 3}
        to_a = await outbox.get_batch(conn, A)
        assert [p.event_id for p in to_a.pdus] == ["$e1", "$e3"]
        await outbox.delete_batch(conn, A, to_a)
        assert await outbox.get_queue_depths(conn) == {B: 3}
        to_b = await outbox.get_batch(conn, B)
        assert [p.event_id for p in to_b.pdus] == ["$e1", "$e2"]
        assert [e.edu_type for e in to_b.edus] == ["m.presence"]
        # Positions are never shared between destinations' rows.
        assert {p.position for p in to_a.pdus}.isdisjoint({p.position for p in to_b.pdus})


async def test_rows_are_queued_with_their_transaction(db: Database) -> None:
    """A rolled-back transaction queues nothing; an unknown event cannot be queued at all."""
    class Abort(Exception):
        pass

    async def rolled_back(conn: asyncpg.Connection) -> None:
        await events_store.insert_events(conn, [numbered_event("!r:x", 1)])
        await outbox.insert_pdus(conn, [(A, "$e1")])
        raise Abort

    with pytest.raises(Abort):
        await db.transaction(rolled_back)
    async with db.connection() as conn:
        assert await outbox.get_queue_depths(conn) == {}
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await outbox.insert_pdus(conn, [(A, "$unknown")])
        await outbox.insert_pdus(conn, [])  # nothing to queue: no statement


async def test_destination_state_round_trip(db: Database) -> None:
    async with db.connection() as conn:
        assert await outbox.get_destination_states(conn, [A]) == {}
        await outbox.upsert_destination_state(conn, A, DestinationState(0, None, 1_000))
        await outbox.upsert_destination_state(conn, A, DestinationState(3, 9_000, None))
        await outbox.upsert_destination_state(conn, B, DestinationState(1, 2_000, None))
        # A failure keeps the time of the last success.
        assert await outbox.get_destination_states(conn, [A, B, "c.example"]) == {
            A: DestinationState(3, 9_000, 1_000),
            B: DestinationState(1, 2_000, None),
        }
        await outbox.upsert_destination_state(conn, A, DestinationState(0, None, 12_000))
        assert (await outbox.get_destination_states(conn, [A]))[A] == DestinationState(
            0, None, 12_000
        )


async def test_the_oldest_queued_item_of_each_destination(db: Database) -> None:
    await queue_pdus(db, [(A, 1), (A, 2)])
    async with db.connection() as conn:
        await outbox.insert_edus(conn, [A, B], "m.typing", {})
        to_a, to_b = await outbox.get_batch(conn, A), await outbox.get_batch(conn, B)
        assert await outbox.get_oldest_queued(conn) == {
            A: min(p.enqueued_ts for p in to_a.pdus), B: to_b.edus[0].enqueued_ts,
        }
        await outbox.delete_batch(conn, A, to_a)
        assert await outbox.get_oldest_queued(conn) == {B: to_b.edus[0].enqueued_ts}
