"""Rooms, aliases and client transaction IDs: first writer wins, and an idempotency key is
(user, device, transaction ID, scope)."""

from __future__ import annotations

import asyncpg
import pytest

from storage import rooms
from storage.database import Database
from storage.rooms import ClientTxnKey
from tests.storage.rows import add_room


async def test_a_room_is_recorded_once_and_its_version_corrected(db: Database) -> None:
    async with db.connection() as conn:
        assert await rooms.get_room_version(conn, "!r:x") is None
        assert not await rooms.lock_room(conn, "!r:x")
        await rooms.insert_room_if_absent(conn, "!r:x", "9", "@a:x", 1, False)
        await rooms.insert_room_if_absent(conn, "!r:x", "11", "@b:x", 2, True)  # rejoined
        assert await rooms.get_room_version(conn, "!r:x") == "9"
        await rooms.set_room_version(conn, "!r:x", "11")
        assert await rooms.get_room_version(conn, "!r:x") == "11"
        assert await rooms.lock_room(conn, "!r:x")
        with pytest.raises(asyncpg.UniqueViolationError):
            await rooms.insert_room(conn, "!r:x", "10", "@a:x", 3, False)


async def test_an_alias_belongs_to_whoever_took_it_first(db: Database) -> None:
    async with db.connection() as conn:
        await add_room(conn, "!a:x")
        await add_room(conn, "!b:x")
        assert await rooms.insert_alias(conn, "#z:x", "!a:x", "@u:x")
        assert await rooms.insert_alias(conn, "#y:x", "!a:x", "@u:x")
        assert not await rooms.insert_alias(conn, "#z:x", "!b:x", "@v:x")
        assert tuple(await rooms.get_alias(conn, "#z:x") or ()) == ("!a:x", "@u:x")
        assert await rooms.get_aliases_for_room(conn, "!a:x") == ["#y:x", "#z:x"]
        assert await rooms.count_aliases_by_creator(conn, "@u:x") == 2
        await rooms.delete_alias(conn, "#z:x")
        assert await rooms.get_alias(conn, "#z:x") is None
        assert await rooms.insert_alias(conn, "#z:x", "!b:x", "@v:x")
        # An alias must point at a known room.
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await rooms.insert_alias(conn, "#w:x", "!unknown:x", "@u:x")


async def test_client_transactions_are_keyed_by_device_and_scope(db: Database) -> None:
    send = ClientTxnKey("@u:x", "D", "t1", "send/!r:x/m.room.message")
    other_scope = ClientTxnKey("@u:x", "D", "t1", "state/!r:x/m.room.topic/")
    other_device = ClientTxnKey("@u:x", "E", "t1", send.scope)
    async with db.connection() as conn:
        assert await rooms.get_client_txns(conn, []) == {}
        await rooms.insert_client_txns(conn, [(send, "$1"), (other_scope, "$2")], 5)
        await rooms.insert_client_txns(conn, [], 6)
        assert await rooms.get_client_txns(conn, [send, other_scope, other_device]) == {
            send: "$1", other_scope: "$2"
        }
        assert await rooms.get_txn_ids_for_events(conn, "@u:x", "D", ["$1", "$3"]) == {
            "$1": "t1"
        }
        assert await rooms.get_txn_ids_for_events(conn, "@u:x", "E", ["$1"]) == {}
        with pytest.raises(asyncpg.UniqueViolationError):
            await rooms.insert_client_txns(conn, [(send, "$9")], 7)
