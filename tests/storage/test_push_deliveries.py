"""The push gateway queue: one statement queues a batch's notifications for every http
pusher of the notified users, in stream order; badges are not queued twice; a deleted pusher
takes its queue with it."""

from __future__ import annotations

from dataclasses import replace

import asyncpg

from storage import push as push_store
from storage import push_deliveries as queue
from storage.database import Database
from storage.push import NotificationGroup, Pusher
from storage.push_deliveries import PusherKey, PusherState
from tests.statements import counting, recording

U1, U2, U3, U4 = "@u1:x", "@u2:x", "@u3:x", "@u4:x"
ROOM = "!r:x"
APP = "org.example.app"


def pusher(pushkey: str, kind: str = "http") -> Pusher:
    return Pusher("org.example.app", pushkey, kind, "App", "Phone", None, "en",
                  {"url": "https://gw.example/_matrix/push/v1/notify"})


async def add_pusher(conn: asyncpg.Connection, user_id: str, p: Pusher) -> None:
    await conn.execute(
        "INSERT INTO pushers (user_id, app_id, pushkey, kind, app_display_name,"
        " device_display_name, profile_tag, lang, data, created_ts)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1000)",
        user_id, p.app_id, p.pushkey, p.kind, p.app_display_name, p.device_display_name,
        p.profile_tag, p.lang, p.data,
    )


async def test_one_statement_queues_every_http_pusher_of_the_notified_users(
    db: Database,
) -> None:
    async with db.connection() as conn:
        await add_pusher(conn, U1, pusher("k1"))
        await add_pusher(conn, U1, pusher("k1b"))
        await add_pusher(conn, U2, pusher("k2"))
        await add_pusher(conn, U3, pusher("k3", kind="email"))
        notified = [
            NotificationGroup(ROOM, "$b", 11, '["notify"]', False, 1, [U1, U2, U3, U4]),
            NotificationGroup(ROOM, "$a", 10, '["notify"]', False, 1, [U2]),
            NotificationGroup(ROOM, "$b", 11, '["notify", {"set_tweak": "highlight"}]', True,
                              1, [U4]),
        ]
        async with recording(conn) as statements:
            queued = await queue.queue_notified(conn, notified)
        assert counting(statements, "push_deliveries") == 1  # asyncpg may add type lookups
        assert sorted(set(queued)) == [
            PusherKey(U1, "org.example.app", "k1"), PusherKey(U1, "org.example.app", "k1b"),
            PusherKey(U2, "org.example.app", "k2"),
        ]
        k1, k1b, k2 = (PusherKey(U1, APP, "k1"), PusherKey(U1, APP, "k1b"),
                       PusherKey(U2, APP, "k2"))
        queues = await queue.get_queued(conn, [k1, k2, PusherKey(U4, "a", "b")], 10)
        assert set(queues) == {k1, k2}  # a pusher with nothing queued is left out
        assert [r.event_id for r in queues[k1]] == ["$b"]
        rows = queues[k2]
        assert [(r.event_id, r.room_id, r.actions) for r in rows] == [
            ("$a", ROOM, ["notify"]), ("$b", ROOM, ["notify"]),
        ]
        assert rows[0].pusher_data["url"].startswith("https://")
        assert rows[0].pushkey_ts == 1000
        assert (await queue.get_queue_stats(conn))[0] == 4
        # Delivered rows (of any pusher) go with the next read, in one statement; a limit
        # is per pusher.
        [only] = queues[k1]
        async with recording(conn) as statements:
            queues = await queue.get_queued(conn, [k1, k1b, k2], 1, delivered=[only.position])
        assert counting(statements, "push_deliveries") == 1
        assert {k: [r.event_id for r in q] for k, q in queues.items()} == {
            k1b: ["$b"], k2: ["$a"],
        }
        assert (await queue.get_queue_stats(conn))[0] == 3
        await queue.delete_queued(conn, [r.position for r in rows])
        assert (await queue.get_queue_stats(conn))[0] == 1
        async with recording(conn) as statements:
            assert await queue.queue_notified(conn, []) == []
            assert await queue.queue_notified(conn, [replace(notified[1], user_ids=[])]) == []
        assert statements == []


async def test_badges_wait_once_and_a_deleted_pusher_takes_its_queue(db: Database) -> None:
    key = PusherKey(U1, "org.example.app", "k1")
    async with db.connection() as conn:
        await add_pusher(conn, U1, pusher("k1"))
        assert await queue.queue_badges(conn, U1) == [key]
        assert await queue.queue_badges(conn, U1) == []  # one is waiting already
        [badge] = (await queue.get_queued(conn, [key], 10))[key]
        assert (badge.event_id, badge.room_id, badge.actions) == (None, None, None)
        await queue.set_pusher_state(conn, key, PusherState(3, 5000))
        assert await queue.get_queued_pushers(conn) == {key: PusherState(3, 5000)}
        assert await queue.is_queued(conn, badge.position)
        await push_store.delete_pusher(conn, U1, key.app_id, key.pushkey)
        assert not await queue.is_queued(conn, badge.position)
        assert await queue.get_queue_stats(conn) == (0, None)


async def test_who_holds_an_http_pusher(db: Database) -> None:
    async with db.connection() as conn:
        await add_pusher(conn, U1, pusher("k1"))
        await add_pusher(conn, U1, pusher("k1b"))
        await add_pusher(conn, U2, pusher("k2"))
        await add_pusher(conn, U3, pusher("k3", kind="email"))
        assert await push_store.get_http_pusher_owners(conn) == {U1, U2}
        assert await push_store.get_http_pusher_owners_among(conn, [U2, U3, U4]) == {U2}
        taken = await push_store.delete_other_users_pushers(conn, "org.example.app", "k2", U4)
        assert taken == [U2]
        assert await push_store.get_http_pusher_owners(conn) == {U1}
