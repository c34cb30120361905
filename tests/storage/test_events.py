"""The `events` table: events read back as written, timeline windows and pages, the
historical segment's key order, redactions, and the per-stream reads /sync makes."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from storage import events as store
from storage.database import Database
from storage.events import NewEvent
from tests.storage.rows import add_room, event, insert, member, set_state

R = "!r:x"


def ids(events: list[store.StoredEvent]) -> list[str]:
    return [e.event_id for e in events]


async def timeline(conn: asyncpg.Connection) -> None:
    """$1..$8 at positions 1..8 in R: $3 rejected, $5 soft-failed, $6 a topic sent by @b,
    $7 in another room, the others messages from @u."""
    await insert(conn, *(
        event(f"$e{n}", "!other:x" if n == 7 else R, stream=n, rejected=n == 3,
              soft_failed=n == 5, type="m.room.topic" if n == 6 else "m.room.message",
              sender="@b:x" if n == 6 else "@u:x")
        for n in range(1, 9)
    ))


async def test_an_event_reads_back_as_written(db: Database) -> None:
    new = event("$e", R, stream=4, depth=9, type="m.room.name", state_key="", sender="@s:x",
                content={"name": "N"}, replaces="$old", prev=["$p"], auth=["$a1", "$a2"])
    async with db.connection() as conn:
        await insert(conn, new)
        assert await store.get_events(conn, ["$e", "$e", "$missing"]) == {"$e": new.stored}
        edges = await conn.fetch("SELECT prev_event_id FROM event_edges WHERE event_id = '$e'")
        auth = await conn.fetch(
            "SELECT auth_event_id FROM event_auth_edges WHERE event_id = '$e' ORDER BY 1"
        )
        assert ([r[0] for r in edges], [r[0] for r in auth]) == (["$p"], ["$a1", "$a2"])
        with pytest.raises(asyncpg.UniqueViolationError):
            await insert(conn, event("$other", R, stream=4))  # one event per position


async def test_timeline_windows_skip_refused_events_and_honour_the_limit(db: Database) -> None:
    async with db.connection() as conn:
        await timeline(conn)

        async def page(**kw: Any) -> list[str]:
            return ids(await store.get_room_events(conn, R, **kw))

        assert await page(after=0, upto=8, limit=10, newest_first=False) == [
            "$e1", "$e2", "$e4", "$e6", "$e8"
        ]
        assert await page(after=0, upto=8, limit=2, newest_first=True) == ["$e8", "$e6"]
        assert await page(after=0, upto=8, limit=2, newest_first=False) == ["$e1", "$e2"]
        # (after, upto]: a sync from 4 up to 6 gets only $e6.
        assert await page(after=4, upto=6, limit=10, newest_first=True) == ["$e6"]
        assert await page(after=0, upto=8, limit=10, newest_first=True,
                          types=["m.room.topic"]) == ["$e6"]
        assert await page(after=0, upto=8, limit=10, newest_first=False,
                          senders=["@u:x"]) == ["$e1", "$e2", "$e4", "$e8"]
        assert await store.get_rooms_changed(conn, [R, "!other:x", "!none:x"], 6, 8) == {
            R, "!other:x"
        }
        assert await store.get_rooms_changed(conn, [R], 8, 100) == set()


async def test_the_newest_events_of_several_windows_in_one_read(db: Database) -> None:
    """What `get_room_events` answers newest first for each window, per room, in one query:
    each window's own bounds and limit, refused events skipped, rooms with none left out."""
    async with db.connection() as conn:
        await timeline(conn)
        windows = [(R, 1, 8, 2), ("!other:x", 0, 8, 5), ("!none:x", 0, 8, 5), ("!r2:x", 0, 0, 1)]
        found = await store.get_rooms_newest_events(conn, windows)
        assert {room: ids(events) for room, events in found.items()} == {
            R: ["$e8", "$e6"], "!other:x": ["$e7"],
        }
        for room_id, after, upto, limit in windows:
            assert found.get(room_id, []) == await store.get_room_events(
                conn, room_id, after=after, upto=upto, limit=limit, newest_first=True
            )
        assert ids((await store.get_rooms_newest_events(conn, [(R, 0, 5, 10)]))[R]) == [
            "$e4", "$e2", "$e1"
        ]
        assert await store.get_rooms_newest_events(conn, []) == {}
        assert await store.get_soft_failed_ids(conn, ["$e4", "$e5"]) == {"$e5"}


async def test_history_pages_by_depth_and_id_around_a_key(db: Database) -> None:
    async with db.connection() as conn:
        await insert(
            conn,
            *(event(f"$h{n}", R, stream=None, depth=n // 2) for n in range(6)),
            event("$outlier", R, stream=None, depth=1, outlier=True),
            event("$refused", R, stream=None, depth=1, rejected=True),
            event("$timeline", R, stream=1, depth=9),
        )
        # Depths 0,0,1,1,2,2 for $h0..$h5: (depth, event ID) orders them $h0..$h5.

        async def history(key: tuple[int, str] | None, newest_first: bool) -> list[str]:
            return ids(await store.get_historical_events(
                conn, R, key=key, limit=3, newest_first=newest_first
            ))

        assert await history(None, True) == ["$h5", "$h4", "$h3"]
        assert await history(None, False) == ["$h0", "$h1", "$h2"]
        # Backwards is strictly below the key; forwards starts at it.
        assert await history((1, "$h3"), True) == ["$h2", "$h1", "$h0"]
        assert await history((1, "$h3"), False) == ["$h3", "$h4", "$h5"]


async def test_a_redaction_counts_only_from_the_same_room(db: Database) -> None:
    async with db.connection() as conn:
        await insert(
            conn,
            event("$target", R, stream=1, type="m.room.topic", state_key=""),
            event("$redaction", R, stream=2, type="m.room.redaction"),
            event("$foreign", "!other:x", stream=3, type="m.room.redaction"),
        )
        await store.insert_redaction(conn, "$foreign", "$target")
        assert (await store.get_events(conn, ["$target"]))["$target"].redacted_by is None
        # A redaction may arrive before what it redacts: recorded by ID.
        await store.insert_redaction(conn, "$redaction", "$target")
        await store.insert_redaction(conn, "$redaction", "$target")
        assert (await store.get_events(conn, ["$target"]))["$target"].redacted_by == "$redaction"
        assert await store.get_redacted_ids(conn, R, ["$target", "$redaction"]) == {"$target"}
        assert await store.get_redacted_ids(conn, "!quiet:x", ["$target"]) == set()

        await conn.execute(
            "INSERT INTO current_state VALUES ($1, 'm.room.topic', '', '$target')", R
        )
        ((event_id, room_id, _),) = await store.get_redacted_current_state(conn)
        assert (event_id, room_id) == ("$target", R)
        await store.censor_events(conn, [("$target", R, '{"redacted": true}')])
        await store.censor_events(conn, [])
        assert (await store.get_events(conn, ["$target"]))["$target"].json == '{"redacted": true}'


async def test_forward_extremities_are_replaced_by_the_new_event(db: Database) -> None:
    async with db.connection() as conn:
        await insert(conn, *(event(f"$e{n}", R, stream=n) for n in range(1, 4)))
        await store.replace_forward_extremities(conn, R, [], "$e1")
        await store.replace_forward_extremities(conn, R, [], "$e2")
        await store.replace_forward_extremities(conn, R, ["$e1", "$e2"], "$e3")
        assert await store.get_forward_extremities(conn, R) == [store.Extremity("$e3", 3, None, 3)]


async def test_sync_reads_the_latest_state_and_membership_in_a_window(db: Database) -> None:
    async with db.connection() as conn:
        await insert(
            conn,
            event("$n1", R, stream=1, type="m.room.name", state_key=""),
            member("$j", R, "@u:x", "join", stream=2),
            event("$n2", R, stream=3, type="m.room.name", state_key=""),
            event("$n3", R, stream=4, type="m.room.name", state_key="", rejected=True),
            member("$l", R, "@u:x", "leave", stream=5),
            member("$elsewhere", "!s:x", "@u:x", "join", stream=6),
        )
        changes = await store.get_state_changes(conn, R, 0, 4)
        assert sorted(ids(changes.events)) == ["$j", "$n2"] and not changes.resolved
        assert ids((await store.get_state_changes(conn, R, 3, 10)).events) == ["$l"]
        assert (await store.get_state_changes(conn, R, 5, 10)).events == []
        # Resolution moving the state at an event (a message, even) is said within its range.
        await store.set_current_state_group(conn, "$elsewhere", 1)
        await store.set_current_state_group(conn, "$n3", 1)
        assert not (await store.get_state_changes(conn, R, 4, 10)).resolved
        nothing_changed = await store.get_state_changes(conn, R, 3, 4)
        assert nothing_changed.resolved and nothing_changed.events == []
        assert await store.get_membership_changes(conn, "@u:x", 0, 6) == {
            R: ("$l", 5), "!s:x": ("$elsewhere", 6)
        }
        assert await store.get_membership_changes(conn, "@u:x", 0, 4) == {R: ("$j", 2)}


async def test_last_departure_walks_back_to_the_event_that_ended_the_join(db: Database) -> None:
    async with db.connection() as conn:
        await insert(
            conn,
            member("$join", R, "@u:x", "join", stream=1),
            member("$leave", R, "@u:x", "leave", stream=2, replaces="$join"),
            member("$invite", R, "@u:x", "invite", stream=3, replaces="$leave"),
            member("$reject", R, "@u:x", "leave", stream=4, replaces="$invite"),
            member("$never", R, "@v:x", "invite", stream=5),
            member("$declined", R, "@v:x", "leave", stream=6, replaces="$never"),
        )
        departure = await store.get_last_departure(conn, "$reject")
        assert departure is not None and departure.event_id == "$leave"
        assert await store.get_last_departure(conn, "$declined") is None


async def test_relations_threads_and_timestamps(db: Database) -> None:
    def reply(n: int, rel_type: str, sender: str = "@u:x") -> NewEvent:
        content = {"m.relates_to": {"rel_type": rel_type, "event_id": "$root"}}
        return event(f"$r{n}", R, stream=n, content=content, sender=sender, ts=n * 100)

    async with db.connection() as conn:
        await insert(
            conn, event("$root", R, stream=1, ts=100),
            reply(2, "m.thread"), reply(3, "m.annotation"), reply(4, "m.thread", "@v:x"),
            event("$other", R, stream=5, ts=500),
            # Backfilled history has no stream position and is still the room's; an outlier
            # is not.
            event("$history", R, stream=None, depth=3, ts=250),
            event("$outlier", R, stream=None, ts=260, outlier=True),
        )
        relations = await store.get_relations(
            conn, R, "$root", rel_type=None, event_type=None, after=0, before=10, limit=10,
            newest_first=True,
        )
        assert ids(relations) == ["$r4", "$r3", "$r2"]
        threaded = await store.get_relations(
            conn, R, "$root", rel_type="m.thread", event_type=None, after=2, before=10,
            limit=10, newest_first=False,
        )
        assert ids(threaded) == ["$r4"]
        (thread,) = await store.get_threads(conn, R, before=10, limit=5)
        assert (thread["root"], thread["latest"]) == ("$root", 4)
        # Paging back past a thread's latest reply leaves the thread out.
        assert await store.get_threads(conn, R, before=4, limit=5) == []
        # Only the threads a user replied in (or whose root they sent).
        assert [t["root"] for t in await store.get_threads(
            conn, R, before=10, limit=5, participant="@v:x")] == ["$root"]
        assert await store.get_threads(conn, R, before=10, limit=5, participant="@w:x") == []

        assert await store.get_events_near_ts(conn, R, 250, forwards=True, limit=3) == [
            "$history", "$r3", "$r4"
        ]
        assert await store.get_events_near_ts(conn, R, 300, forwards=False, limit=3) == [
            "$r3", "$history", "$r2"
        ]


async def test_the_current_state_of_many_rooms_by_key_type_and_room(db: Database) -> None:
    async with db.connection() as conn:
        for room in ("!a:x", "!b:x", "!c:x"):
            await add_room(conn, room)
        name_a = await set_state(conn, "!a:x", "m.room.name", {"name": "A"}, stream=1)
        await set_state(conn, "!a:x", "m.room.topic", {}, stream=2)
        member_u = await set_state(conn, "!b:x", "m.room.member", {}, stream=3, state_key="@u:x")
        member_v = await set_state(conn, "!b:x", "m.room.member", {}, stream=4, state_key="@v:x")
        await set_state(conn, "!b:x", "m.room.name", {}, stream=5)
        topic_c = await set_state(conn, "!c:x", "m.room.topic", {}, stream=6)
        name_c = await set_state(conn, "!c:x", "m.room.name", {}, stream=7)
        found = await store.get_current_state_of_rooms(
            conn, [("!a:x", "m.room.name", ""), ("!a:x", "m.room.avatar", "")],
            [("!b:x", "m.room.member")], ["!c:x"],
        )
        assert {e.event_id for e in found} == {name_a, member_u, member_v, topic_c, name_c}
        assert {(e.room_id, e.type, e.state_key) for e in found if e.event_id == name_a} == {
            ("!a:x", "m.room.name", "")}
        only_rooms = await store.get_current_state_of_rooms(conn, [], [], ["!a:x"])
        assert {e.type for e in only_rooms} == {"m.room.name", "m.room.topic"}
        assert await store.get_current_state_of_rooms(conn, [], [], []) == []

