"""Room state: snapshots stored as deltas read back whole, the delta chain stays bounded, and
the current state and membership tables follow their writes."""

from __future__ import annotations

from storage import state
from storage.database import Database
from storage.state import MAX_DELTA_DEPTH

R = "!r:x"
CREATE, NAME, TOPIC = ("m.room.create", ""), ("m.room.name", ""), ("m.room.topic", "")
ALICE, BOB = ("m.room.member", "@alice:x"), ("m.room.member", "@bob:x")


async def test_a_group_is_its_parents_state_overlaid_with_its_delta(db: Database) -> None:
    async with db.connection() as conn:
        base = await state.insert_state_group(conn, R, None, {CREATE: "$c", NAME: "$n1"})
        child = await state.insert_state_group(conn, R, base, {NAME: "$n2", ALICE: "$a"})
        empty = await state.insert_state_group(conn, R, child, {})
        assert await state.get_state(conn, base) == {CREATE: "$c", NAME: "$n1"}
        assert await state.get_state(conn, empty) == {CREATE: "$c", NAME: "$n2", ALICE: "$a"}
        assert await state.get_state(conn, empty, ["m.room.member"]) == {ALICE: "$a"}
        assert await state.get_state_for_keys(conn, empty, [NAME, TOPIC, BOB]) == {NAME: "$n2"}


async def test_the_delta_chain_is_cut_by_full_snapshots(db: Database) -> None:
    async with db.connection() as conn:
        group = await state.insert_state_group(conn, R, None, {CREATE: "$c"})
        for n in range(2 * MAX_DELTA_DEPTH):
            group = await state.insert_state_group(conn, R, group, {NAME: f"$n{n}"})
            depth = await conn.fetchval(
                "SELECT delta_depth FROM state_groups WHERE state_group = $1", group
            )
            assert depth < MAX_DELTA_DEPTH
            assert await state.get_state(conn, group) == {CREATE: "$c", NAME: f"$n{n}"}
        full = await conn.fetchval("SELECT count(*) FROM state_groups WHERE prev_group IS NULL")
        assert full == 3  # the first group and one snapshot per MAX_DELTA_DEPTH hops


async def test_current_state_is_upserted_read_by_key_and_deleted(db: Database) -> None:
    async with db.connection() as conn:
        for key, event_id in [(CREATE, "$c"), (NAME, "$n1"), (ALICE, "$a"), (NAME, "$n2")]:
            await state.upsert_current_state(conn, R, key, event_id)
        await state.upsert_current_state(conn, "!other:x", TOPIC, "$t")
        assert await state.get_current_state(conn, R) == {CREATE: "$c", NAME: "$n2", ALICE: "$a"}
        assert await state.get_current_state(conn, R, ["m.room.member"]) == {ALICE: "$a"}
        assert await state.get_current_state_for_keys(conn, R, [NAME, TOPIC]) == {NAME: "$n2"}
        assert await state.get_current_state_event_id(conn, R, NAME) == "$n2"
        await state.delete_current_state(conn, R, [NAME, BOB])
        await state.delete_current_state(conn, R, [])
        assert await state.get_current_state(conn, R) == {CREATE: "$c", ALICE: "$a"}
        assert await state.get_current_state_event_id(conn, R, NAME) is None


async def test_memberships_list_in_stream_order_and_a_forgotten_room_is_hidden(
    db: Database,
) -> None:
    async with db.connection() as conn:
        await state.upsert_membership(conn, R, "@b:x", "join", "$b", 2)
        await state.upsert_membership(conn, R, "@a:x", "invite", "$a1", 3)
        await state.upsert_membership(conn, R, "@a:x", "join", "$a2", 4)
        await state.upsert_membership(conn, R, "@c:x", "leave", "$c", 5)
        members = await state.get_members(conn, R)
        assert [(m["user_id"], m["membership"]) for m in members] == [
            ("@b:x", "join"), ("@a:x", "join"), ("@c:x", "leave")
        ]
        assert [m["user_id"] for m in await state.get_members(conn, R, ["leave"])] == ["@c:x"]
        assert await state.count_members(conn, R, ["join", "invite"]) == 2

        assert not await state.forget_room(conn, R, "@a:x")  # joined: cannot forget
        assert await state.forget_room(conn, R, "@c:x")
        assert await state.get_rooms_for_user(conn, "@c:x", ["leave"]) == []
        (row,) = await state.get_memberships_of(conn, "@c:x")
        assert row["forgotten"]
        # Joining again brings the room back.
        await state.upsert_membership(conn, R, "@c:x", "join", "$c2", 6)
        (room,) = await state.get_rooms_for_user(conn, "@c:x", ["join"])
        assert (room["room_id"], room["event_id"], room["stream_ordering"]) == (R, "$c2", 6)
        membership = await state.get_membership(conn, R, "@c:x")
        assert membership is not None and not membership["forgotten"]
