"""Sliding sync storage: connections replace and bound each other, positions are found only
while their connection lives, and the per-room reads lists are sorted and filtered by."""

from __future__ import annotations

from storage import accounts
from storage import sliding_sync as store
from storage.database import Database
from tests.storage.rows import add_room, add_user, event, insert, set_membership, set_state

A = "@a:x"


async def test_a_connection_without_pos_replaces_the_earlier_one(db: Database) -> None:
    async with db.connection() as conn:
        await add_user(conn, A, "D")
        first = await store.start_connection(conn, A, "D", "main", "s1", 1, '{"v":1}', 10)
        assert first.dropped == []
        found = await store.get_position(conn, first.position_id)
        assert found is not None
        assert (found.connection_id, found.user_id, found.device_id, found.conn_id,
                found.secret, found.last_used_ts, found.state) == (
            first.connection_id, A, "D", "main", "s1", 1, '{"v":1}')
        second = await store.start_connection(conn, A, "D", "main", "s2", 2, "{}", 10)
        assert second.dropped == [first.connection_id]
        assert second.connection_id != first.connection_id
        assert await store.get_position(conn, first.position_id) is None
        assert await store.get_last_used(conn, first.connection_id) is None
        assert await store.get_position(conn, second.position_id) is not None


async def test_a_first_position_commits_without_waiting_for_the_disk_alone(db: Database) -> None:
    """`synchronous_commit` is off for the statement's own transaction, and for nothing after
    it on the pooled connection."""
    async with db.connection() as conn:
        await add_user(conn, A, "D")
        async with conn.transaction():
            await store.start_connection(conn, A, "D", "main", "s1", 1, "{}", 10)
            assert await conn.fetchval("SHOW synchronous_commit") == "off"
        assert await conn.fetchval("SHOW synchronous_commit") == "on"
        await store.start_connection(conn, A, "D", "main", "s2", 2, "{}", 10)
        assert await conn.fetchval("SHOW synchronous_commit") == "on"


async def test_a_device_keeps_its_newest_connections(db: Database) -> None:
    async with db.connection() as conn:
        await add_user(conn, A, "D", "E")
        ids = [
            (await store.start_connection(conn, A, "D", f"c{i}", "s", i, "{}", 3)).connection_id
            for i in range(3)
        ]
        other = await store.start_connection(conn, A, "E", "c0", "s", 0, "{}", 3)
        newest = await store.start_connection(conn, A, "D", "c3", "s", 3, "{}", 3)
        assert newest.dropped == [ids[0]]
        for kept in (*ids[1:], newest.connection_id, other.connection_id):
            assert await store.get_last_used(conn, kept) is not None
        again = await store.start_connection(conn, A, "D", "c1", "s", 4, "{}", 3)
        assert again.dropped == [ids[1]]  # replacing one of its own is no new connection


async def test_a_new_position_deletes_those_before_the_one_used(db: Database) -> None:
    async with db.connection() as conn:
        await add_user(conn, A, "D")
        started = await store.start_connection(conn, A, "D", "", "s", 0, "1", 10)
        p1 = started.position_id
        p2 = await store.insert_position(conn, started.connection_id, "2", p1)
        p3 = await store.insert_position(conn, started.connection_id, "3", p2)
        assert await store.get_position(conn, p1) is None
        for kept in (p2, p3):  # the one the client came from may be retried
            assert await store.get_position(conn, kept) is not None


async def test_logging_out_a_device_deletes_its_connections(db: Database) -> None:
    async with db.connection() as conn:
        await add_user(conn, A, "D")
        started = await store.start_connection(conn, A, "D", "", "s", 0, "{}", 10)
        await accounts.delete_devices(conn, A, ["D"])
        assert await store.get_position(conn, started.position_id) is None


async def test_last_used_is_kept_and_a_connection_deleted(db: Database) -> None:
    async with db.connection() as conn:
        await add_user(conn, A, "D")
        connection = (await store.start_connection(conn, A, "D", "", "s", 5, "{}", 10)
                      ).connection_id
        assert await store.get_last_used(conn, connection) == 5
        await store.set_last_used(conn, connection, 99)
        assert await store.get_last_used(conn, connection) == 99
        await store.delete_connection(conn, connection)
        assert await store.get_last_used(conn, connection) is None


async def test_bump_stamps_count_bumping_events_up_to_each_bound(db: Database) -> None:
    async with db.connection() as conn:
        for room in ("!r:x", "!q:x"):
            await add_room(conn, room)
        await insert(
            conn,
            event("$c", "!r:x", stream=1, type="m.room.create", state_key=""),
            event("$m", "!r:x", stream=2),
            event("$t", "!r:x", stream=3, type="m.room.topic", state_key=""),
            event("$x", "!r:x", stream=4, rejected=True),
            event("$y", "!r:x", stream=5, soft_failed=True),
            event("$e", "!r:x", stream=6, type="m.room.encrypted"),
            event("$q", "!q:x", stream=7, type="m.reaction"),
        )
        stamps = await store.get_bump_stamps(conn, [("!r:x", 100), ("!q:x", 100)])
        assert stamps == {"!r:x": 6, "!q:x": None}
        assert await store.get_bump_stamps(conn, [("!r:x", 5)]) == {"!r:x": 2}
        assert await store.get_bump_stamps(conn, [("!r:x", 100)], after=1) == {"!r:x": 6}
        assert await store.get_bump_stamps(conn, [("!r:x", 100)], after=6) == {"!r:x": None}


async def test_member_counts_and_current_state_of_many_rooms(db: Database) -> None:
    async with db.connection() as conn:
        await add_room(conn, "!r:x")
        await set_membership(conn, "!r:x", "@a:x", "join", stream=1)
        await set_membership(conn, "!r:x", "@b:x", "join", stream=2)
        await set_membership(conn, "!r:x", "@c:x", "invite", stream=3)
        await set_membership(conn, "!r:x", "@d:x", "leave", stream=4)
        assert await store.get_member_counts(conn, ["!r:x", "!none:x"]) == {"!r:x": (2, 1)}
        await set_state(conn, "!r:x", "m.room.create", {"type": "m.space"}, stream=5)
        await set_state(conn, "!r:x", "m.room.encryption", {}, stream=6, state_key="odd")
        found = await store.get_current_state_json(
            conn, ["!r:x"], ["m.room.create", "m.room.encryption"]
        )
        assert list(found) == [("!r:x", "m.room.create")]  # the odd state key is not read
        assert '"m.space"' in found[("!r:x", "m.room.create")]
