"""The push gateway queue: one statement queues a batch's notifications for every http
pusher of the notified users, in stream order; badges are not queued twice; a deleted pusher
takes its queue with it."""

from __future__ import annotations

import asyncpg

from storage import push as push_store
from storage import push_deliveries as queue
from storage.database import Database
from storage.push import NotificationGroup, Pusher
from storage.push_deliveries import PusherKey, PusherState

U1, U2, U3, U4 = "@u1:x", "@u2:x", "@u3:x", "@u4:x"
ROOM = "!r:x"


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
        await push_store.insert_notifications(conn, [
            NotificationGroup(ROOM, "$b", 11, '["notify"]', False, 1, [U1, U2, U3, U4]),
            NotificationGroup(ROOM, "$a", 10, '["notify"]', False, 1, [U2]),
            NotificationGroup(ROOM, "$b", 11, '["notify", {"set_tweak": "highlight"}]', True,
                              1, [U4]),
        ])
        queued = await queue.queue_notified(conn, [10, 11])
        assert sorted(set(queued)) == [
            PusherKey(U1, "org.example.app", "k1"), PusherKey(U1, "org.example.app", "k1b"),
            PusherKey(U2, "org.example.app", "k2"),
        ]
        rows = await queue.get_queued(conn, PusherKey(U2, "org.example.app", "k2"), 10)
        assert [(r.event_id, r.room_id, r.actions) for r in rows] == [
            ("$a", ROOM, ["notify"]), ("$b", ROOM, ["notify"]),
        ]
        assert rows[0].pusher_data["url"].startswith("https://")
        assert rows[0].pushkey_ts == 1000
        assert (await queue.get_queue_stats(conn))[0] == 4
        assert await queue.queue_notified(conn, []) == []


async def test_badges_wait_once_and_a_deleted_pusher_takes_its_queue(db: Database) -> None:
    key = PusherKey(U1, "org.example.app", "k1")
    async with db.connection() as conn:
        await add_pusher(conn, U1, pusher("k1"))
        assert await queue.queue_badges(conn, U1) == [key]
        assert await queue.queue_badges(conn, U1) == []  # one is waiting already
        [badge] = await queue.get_queued(conn, key, 10)
        assert (badge.event_id, badge.room_id, badge.actions) == (None, None, None)
        await queue.set_pusher_state(conn, key, PusherState(3, 5000))
        assert await queue.get_queued_pushers(conn) == {key: PusherState(3, 5000)}
        assert await queue.is_queued(conn, badge.position)
        await push_store.delete_pusher(conn, U1, key.app_id, key.pushkey)
        assert not await queue.is_queued(conn, badge.position)
        assert await queue.get_queue_stats(conn) == (0, None)
