"""Walks over the event DAG: auth chains, the missing events another server asks for, backfill,
the bottom of what is held, and outliers promoted into the timeline."""

from __future__ import annotations

import asyncpg

from storage import event_graph as graph
from storage.database import Database
from tests.storage.rows import event, insert

R = "!r:x"


async def chain(conn: asyncpg.Connection, count: int) -> None:
    """$1 <- $2 <- ... <- $count, each at depth and stream position n, each pointing at its
    predecessor as prev event."""
    await insert(conn, *(
        event(f"${n}", R, stream=n, prev=[f"${n - 1}"] if n > 1 else [])
        for n in range(1, count + 1)
    ))


async def test_the_auth_chain_is_every_auth_event_reachable(db: Database) -> None:
    async with db.connection() as conn:
        await insert(
            conn,
            event("$create", R, stream=1),
            event("$join", R, stream=2, auth=["$create"]),
            event("$power", R, stream=3, auth=["$create", "$join"]),
            event("$msg", R, stream=4, auth=["$power", "$join"]),
            event("$unrelated", R, stream=5, auth=["$create"]),
        )
        assert await graph.get_auth_chain_ids(conn, ["$msg"]) == {"$power", "$join", "$create"}
        assert await graph.get_auth_chain_ids(conn, ["$join", "$unrelated"]) == {"$create"}
        assert await graph.get_auth_chain_ids(conn, ["$create"]) == set()
        assert await graph.get_latest_position(conn, R) == 5
        assert await graph.get_latest_position(conn, "!empty:x") is None


async def test_missing_events_are_the_nearest_ones_returned_oldest_first(db: Database) -> None:
    async with db.connection() as conn:
        await chain(conn, 10)
        await insert(conn, event("$refused", R, stream=11, rejected=True, prev=["$10"]),
                     event("$12", R, stream=12, prev=["$refused", "$10"]))

        async def missing(earliest: list[str], latest: list[str], limit: int, min_depth: int = 0
                          ) -> list[str]:
            return await graph.get_missing_event_ids(conn, R, earliest, latest, limit, min_depth)

        assert await missing(["$6"], ["$10"], 10) == ["$7", "$8", "$9"]
        assert await missing(["$2"], ["$10"], 3) == ["$7", "$8", "$9"]
        assert await missing([], ["$10"], 10, min_depth=8) == ["$8", "$9"]
        # A rejected event is never handed out, nor walked through.
        assert await missing(["$9"], ["$12"], 10) == ["$10"]


async def test_backfill_returns_the_deepest_events_from_the_start(db: Database) -> None:
    async with db.connection() as conn:
        await chain(conn, 10)
        assert await graph.get_backfill_ids(conn, R, ["$10", "$10"], 3) == ["$10", "$9", "$8"]
        assert await graph.get_backfill_ids(conn, R, ["$2"], 5) == ["$2", "$1"]
        assert await graph.get_backfill_ids(conn, "!other:x", ["$10"], 5) == []


async def test_backward_extremities_are_the_missing_prev_events_at_the_bottom(
    db: Database,
) -> None:
    async with db.connection() as conn:
        # The join at depth 5 is the room's first stream event; below it, $h4 (history) points
        # at $gone (never fetched) and $auth (held only as an outlier).
        await insert(
            conn,
            event("$auth", R, stream=None, depth=2, outlier=True),
            event("$h4", R, stream=None, depth=4, prev=["$gone", "$auth"]),
            event("$join", R, stream=1, depth=5, prev=["$h4"]),
            event("$later", R, stream=2, depth=6, prev=["$join", "$gap"]),
        )
        # $gap is missing too, but above the join: gap filling's business, not backfill's.
        assert await graph.get_backward_extremities(conn, R, 10) == ["$auth", "$gone"]
        assert await graph.get_backward_extremities(conn, R, 1) == ["$auth"]


async def test_only_an_outlier_is_deleted_with_its_edges(db: Database) -> None:
    async with db.connection() as conn:
        await insert(
            conn,
            event("$out", R, stream=None, outlier=True, prev=["$p"], auth=["$a"]),
            event("$kept", R, stream=1, prev=["$p"], auth=["$a"]),
        )
        assert await graph.get_outlier_ids(conn, ["$out", "$kept"]) == {"$out"}
        assert not await graph.delete_outlier(conn, "$kept")
        assert await graph.delete_outlier(conn, "$out")
        assert await graph.get_outlier_ids(conn, ["$out"]) == set()
        edges = await conn.fetchval(
            "SELECT (SELECT count(*) FROM event_edges) + (SELECT count(*) FROM event_auth_edges)"
        )
        assert edges == 2  # $kept's
        # Now it can be stored again as a timeline event.
        await insert(conn, event("$out", R, stream=2, prev=["$p"]))
