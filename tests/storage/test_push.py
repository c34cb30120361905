"""Push storage: rule order and edits, changes to default rules, unread counts after the read
receipt and the user's own latest event, the notification list, and pushers."""

from __future__ import annotations

import json

import asyncpg

from homeserver.protocol.push_rules import DefaultChange, UserRule
from storage import accounts, receipts
from storage import push as store
from storage.database import Database
from storage.push import NotificationGroup, Pusher, UnreadCount
from tests.storage.rows import add_user, event, insert, set_membership

U, R = "@u:x", "!r:x"
NOTIFY = ["notify"]


async def test_rules_come_most_important_first_and_keep_their_settings(db: Database) -> None:
    async with db.connection() as conn:
        for rule_id in ("a", "b", "c"):
            await store.upsert_rule(conn, U, UserRule("override", rule_id, NOTIFY))
        await store.upsert_rule(conn, U, UserRule("content", "words", [], pattern="cake"))
        await store.set_priorities(conn, U, "override", ["c", "a", "b"])
        assert await store.update_rule(conn, U, "override", "a", enabled=False)
        # Redefining a rule keeps its place and its enabled flag.
        await store.upsert_rule(conn, U, UserRule("override", "a", ["dont_notify"]))
        assert not await store.update_rule(conn, U, "override", "missing", enabled=True)
        assert await store.delete_rule(conn, U, "override", "b")
        assert not await store.delete_rule(conn, U, "override", "b")

        rules = (await store.get_user_rules(conn, [U, "@other:x"]))
        assert rules["@other:x"] == []
        assert [(r.kind, r.rule_id, r.enabled, r.actions) for r in rules[U]] == [
            ("content", "words", True, []),
            ("override", "c", True, NOTIFY),
            ("override", "a", False, ["dont_notify"]),
        ]


async def test_a_change_to_a_default_rule_keeps_what_it_does_not_set(db: Database) -> None:
    key = ("override", ".m.rule.master")
    async with db.connection() as conn:
        await store.upsert_default_change(conn, U, *key, enabled=True)
        await store.upsert_default_change(conn, U, *key, actions=NOTIFY)
        assert await store.get_default_changes(conn, [U, "@other:x"]) == {
            U: {key: DefaultChange(True, NOTIFY)}, "@other:x": {},
        }


async def notified(
    conn: asyncpg.Connection, n: int, *, highlight: bool = False, room: str = R,
    users: list[str] | None = None,
) -> None:
    """Event $n at position n in `room`, sent by someone else, notifying `users` (U by
    default)."""
    await insert(conn, event(f"$n{n}", room, stream=n, ts=n, sender="@sender:x"))
    await store.insert_notifications(conn, [NotificationGroup(
        room, f"$n{n}", n, json.dumps(NOTIFY), highlight, n, users or [U]
    )])


async def read_up_to(
    conn: asyncpg.Connection, n: int, kind: str = "m.read", thread: str = ""
) -> None:
    await receipts.upsert_receipt(
        conn, room_id=R, receipt_type=kind, user_id=U, thread_id=thread, event_id=f"$n{n}",
        data={}, stream_id=n,
    )


async def test_unread_counts_start_after_the_receipt_and_the_own_latest_event(
    db: Database,
) -> None:
    async with db.connection() as conn:
        for n in (1, 2, 3):
            await notified(conn, n)
        await notified(conn, 4, highlight=True)
        await notified(conn, 5, users=["@someone:x"])

        async def counts(upto: int = 100) -> dict[str, UnreadCount]:
            return await store.get_unread_counts(conn, U, [R, "!quiet:x"], upto)

        assert await counts() == {R: UnreadCount(4, 1, 4)}
        assert await counts(upto=2) == {R: UnreadCount(2, 0, 2)}
        await read_up_to(conn, 1)
        await read_up_to(conn, 2, kind="m.read.private")  # the later of the two counts
        await read_up_to(conn, 4, thread="$root")  # a thread's receipt does not
        assert await counts() == {R: UnreadCount(2, 1, 4)}
        await insert(conn, event("$mine", R, stream=6, sender=U))
        await notified(conn, 7)
        assert await counts() == {R: UnreadCount(1, 0, 7)}
        await read_up_to(conn, 7)
        assert await counts() == {}


async def test_notifications_list_newest_first_with_their_read_flag(db: Database) -> None:
    async with db.connection() as conn:
        await set_membership(conn, R, U, "join", stream=1)
        await notified(conn, 2)
        await notified(conn, 3, highlight=True)
        await notified(conn, 4)
        await notified(conn, 5, room="!left-long-ago:x")  # no membership row: not listed
        await read_up_to(conn, 3)

        async def listed(before: int, only_highlight: bool = False, limit: int = 10
                         ) -> list[tuple[str, bool]]:
            found = await store.get_notifications(conn, U, before, only_highlight, limit)
            return [(n.event_id, n.read) for n in found]

        assert await listed(100) == [("$n4", False), ("$n3", True), ("$n2", True)]
        assert await listed(4, limit=1) == [("$n3", True)]
        assert await listed(100, only_highlight=True) == [("$n3", True)]


def pusher(pushkey: str, name: str = "phone") -> Pusher:
    return Pusher("app", pushkey, "http", "App", name, None, "en", {"url": "https://p/"})


async def test_pushers_are_upserted_per_key_and_follow_their_device(db: Database) -> None:
    async with db.connection() as conn:
        await add_user(conn, U, "D1", "D2")
        await add_user(conn, "@v:x", "V")
        await store.upsert_pusher(conn, U, "D1", pusher("k1"), 1)
        await store.upsert_pusher(conn, U, "D2", pusher("k2"), 2)
        await store.upsert_pusher(conn, U, "D1", pusher("k1", "renamed"), 3)
        await store.upsert_pusher(conn, "@v:x", "V", pusher("k1"), 4)
        assert await store.get_pushers(conn, U) == [pusher("k1", "renamed"), pusher("k2")]

        # `append: false` from @v: the pushkey is theirs alone now.
        await store.delete_other_users_pushers(conn, "app", "k1", "@v:x")
        assert await store.get_pushers(conn, U) == [pusher("k2")]
        assert await store.get_pushers(conn, "@v:x") == [pusher("k1")]
        await accounts.delete_devices(conn, U, ["D2"])
        assert await store.get_pushers(conn, U) == []
        await store.delete_pusher(conn, "@v:x", "app", "k1")
        assert await store.get_pushers(conn, "@v:x") == []
