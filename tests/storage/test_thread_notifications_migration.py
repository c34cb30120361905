"""Migration 0021 gives each stored notification its thread: thread replies their root,
everything else the main timeline."""

from __future__ import annotations

import json

from storage import events as events_store
from tests.storage.migrating import apply, just_before
from tests.storage.rows import event


async def test_notified_thread_replies_get_their_root(postgres_dsn: str) -> None:
    async with just_before(postgres_dsn, 21) as conn:
        thread = {"m.relates_to": {"rel_type": "m.thread", "event_id": "$root"}}
        edit = {"m.relates_to": {"rel_type": "m.replace", "event_id": "$root"}}
        await events_store.insert_events(conn, [
            event("$root", "!r:x", stream=1), event("$reply", "!r:x", stream=2,
                                                    content=thread),
            event("$edit", "!r:x", stream=3, content=edit),
        ])
        await conn.executemany(
            "INSERT INTO push_actions (room_id, event_id, stream_ordering, actions,"
            " highlight, ts, user_ids, part) VALUES ('!r:x', $1, $2, $3::text::jsonb,"
            " false, 0, ARRAY['@a:x'], 0)",
            [(e, n, json.dumps(["notify"])) for n, e in enumerate(
                ("$root", "$reply", "$edit"), start=1)],
        )
        await apply(conn, 21)
        got = await conn.fetch(
            "SELECT event_id, thread_id FROM push_actions ORDER BY stream_ordering"
        )
        assert [tuple(r) for r in got] == [
            ("$root", "main"), ("$reply", "$root"), ("$edit", "main"),
        ]
