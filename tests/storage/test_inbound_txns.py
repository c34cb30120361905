"""`federation_inbound_txns`: a retried transaction gets the first answer back, until the
answer ages out."""

from __future__ import annotations

from storage import inbound_txns
from storage.database import Database


async def test_first_answer_is_kept_per_origin_until_it_expires(db: Database) -> None:
    async with db.connection() as conn:
        assert await inbound_txns.get_response(conn, "a.example", "t1") is None
        await inbound_txns.insert_response(conn, "a.example", "t1", {"pdus": {"$e": {}}}, 100)
        # A concurrent retry that finished second does not replace the answer.
        await inbound_txns.insert_response(conn, "a.example", "t1", {"pdus": {}}, 150)
        await inbound_txns.insert_response(conn, "b.example", "t1", {"pdus": {}}, 200)
        assert await inbound_txns.get_response(conn, "a.example", "t1") == {"pdus": {"$e": {}}}
        assert await inbound_txns.get_response(conn, "b.example", "t1") == {"pdus": {}}

        # The cut-off is exclusive: an answer received exactly at it stays.
        await inbound_txns.delete_older_than(conn, 200)
        assert await inbound_txns.get_response(conn, "a.example", "t1") is None
        assert await inbound_txns.get_response(conn, "b.example", "t1") == {"pdus": {}}
