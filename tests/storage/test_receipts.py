"""The `receipts` table: one receipt per (room, type, user, thread), read by stream window."""

from __future__ import annotations

import asyncpg

from storage import receipts
from storage.database import Database
from storage.receipts import Receipt


async def put(
    conn: asyncpg.Connection, room: str, user: str, event_id: str, stream: int, *,
    receipt_type: str = "m.read", thread: str = "",
) -> None:
    await receipts.upsert_receipt(
        conn, room_id=room, receipt_type=receipt_type, user_id=user, thread_id=thread,
        event_id=event_id, data={"ts": stream}, stream_id=stream,
    )


def receipt(room: str, user: str, event_id: str, ts: int, kind: str = "m.read") -> Receipt:
    return Receipt(room, kind, user, event_id, {"ts": ts})


async def test_a_newer_receipt_replaces_the_older_one_and_moves_in_the_stream(
    db: Database,
) -> None:
    async with db.connection() as conn:
        await put(conn, "!a:x", "@u:x", "$1", 1)
        await put(conn, "!a:x", "@v:x", "$1", 2)
        await put(conn, "!a:x", "@u:x", "$3", 3)
        await put(conn, "!a:x", "@u:x", "$1", 4, receipt_type="m.read.private")
        await put(conn, "!a:x", "@u:x", "$2", 5, thread="$root")
        await put(conn, "!b:x", "@u:x", "$9", 6)

        assert await receipts.get_receipts(conn, ["!a:x"], 0, 10) == [
            receipt("!a:x", "@v:x", "$1", 2),
            receipt("!a:x", "@u:x", "$3", 3),
            receipt("!a:x", "@u:x", "$1", 4, "m.read.private"),
            receipt("!a:x", "@u:x", "$2", 5),
        ]
        # (after, upto]: a client that synced up to 3 hears only of later changes.
        later = await receipts.get_receipts(conn, ["!a:x", "!b:x"], 3, 6)
        assert [r.event_id for r in later] == ["$1", "$2", "$9"]
        assert await receipts.get_receipts(conn, ["!a:x"], 0, 1) == []
