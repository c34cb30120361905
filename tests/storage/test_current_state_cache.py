"""The current-state cache answers from memory what it read, until the room engine says the
room changed; a read raced by such a change is not kept, and a cache made to keep nothing (a
worker's) always reads the database."""

from __future__ import annotations

import asyncio

import asyncpg

from homeserver.services.rooms.current_state import ENTRY_BYTES, CurrentStateCache, StateQuery
from storage import events as events_store
from storage.database import Database
from tests.storage.rows import add_room, set_membership, set_state

NAME = StateQuery(frozenset({("m.room.name", ""), ("m.room.topic", "")}))


async def name_of(cache: CurrentStateCache, conn: asyncpg.Connection, room_id: str) -> str:
    [event] = (await cache.get(conn, {room_id: NAME}))[room_id]  # no topic: left out
    return event.event_id


async def test_a_room_is_read_again_only_after_it_changed(db: Database) -> None:
    cache = CurrentStateCache()
    async with db.connection() as conn:
        await add_room(conn, "!r:x")
        first = await set_state(conn, "!r:x", "m.room.name", {"name": "a"}, stream=1)
        assert await name_of(cache, conn, "!r:x") == first
        second = await set_state(conn, "!r:x", "m.room.name", {"name": "b"}, stream=2)
        assert await name_of(cache, conn, "!r:x") == first  # held: no change announced
        cache.invalidate("!r:x")
        assert await name_of(cache, conn, "!r:x") == second


async def test_a_read_raced_by_a_change_is_returned_but_not_kept(db: Database) -> None:
    cache = CurrentStateCache()
    async with db.connection() as conn:
        await add_room(conn, "!r:x")
        first = await set_state(conn, "!r:x", "m.room.name", {"name": "a"}, stream=1)
        reading = asyncio.create_task(name_of(cache, conn, "!r:x"))
        await asyncio.sleep(0)  # its query is in flight
        cache.invalidate("!r:x")
        assert await reading == first
        second = await set_state(conn, "!r:x", "m.room.name", {"name": "b"}, stream=2)
        assert await name_of(cache, conn, "!r:x") == second


async def test_whole_types_member_counts_and_the_bound(db: Database) -> None:
    async with db.connection() as conn:
        for room_id in ("!r:x", "!s:x"):
            await add_room(conn, room_id)
        await set_membership(conn, "!r:x", "@a:x", "join", stream=1)
        await set_membership(conn, "!r:x", "@b:x", "invite", stream=2)
        spaces = StateQuery(whole_types=frozenset({"m.space.child"}))
        child = await set_state(conn, "!r:x", "m.space.child", {}, stream=3, state_key="!c:x")
        child_bytes = len((await events_store.get_events(conn, [child]))[child].json)
        # Room !r:x with its one entry and room !s:x with none fit; !s:x's two entries do not.
        cache = CurrentStateCache(max_bytes=4 * ENTRY_BYTES + child_bytes + ENTRY_BYTES // 2)
        assert [e.event_id for e in (await cache.get(conn, {"!r:x": spaces}))["!r:x"]] == [child]
        assert await cache.member_counts(conn, ["!r:x", "!s:x"]) == {
            "!r:x": (1, 1), "!s:x": (0, 0)}
        await set_membership(conn, "!r:x", "@b:x", "join", stream=4)
        assert (await cache.member_counts(conn, ["!r:x"]))["!r:x"] == (1, 1)  # held
        await cache.get(conn, {"!s:x": NAME})  # over the bound: !r:x goes
        assert (await cache.member_counts(conn, ["!r:x"]))["!r:x"] == (2, 0)


async def test_a_cache_that_keeps_nothing_reads_every_time(db: Database) -> None:
    cache = CurrentStateCache(max_bytes=0)
    async with db.connection() as conn:
        await add_room(conn, "!r:x")
        await set_state(conn, "!r:x", "m.room.name", {"name": "a"}, stream=1)
        assert await name_of(cache, conn, "!r:x") == "$s1"
        await set_state(conn, "!r:x", "m.room.name", {"name": "b"}, stream=2)
        assert await name_of(cache, conn, "!r:x") == "$s2"
