"""Migration 0011 turns one notification row per user into one row per event and set of
actions, keeping every user, action, highlight and position."""

from __future__ import annotations

import json

from tests.storage.migrating import apply, just_before


async def test_per_user_rows_become_one_row_per_event_and_actions(postgres_dsn: str) -> None:
    async with just_before(postgres_dsn, 11) as conn:
        notify = json.dumps(["notify"])
        loud = json.dumps(["notify", {"set_tweak": "highlight"}])
        rows = [
            ("@a:x", "!r:x", "$e1", 1, notify, False, 10),
            ("@b:x", "!r:x", "$e1", 1, notify, False, 11),
            ("@c:x", "!r:x", "$e1", 1, loud, True, 10),
            ("@a:x", "!r:x", "$e2", 2, notify, False, 20),
        ]
        await conn.executemany(
            "INSERT INTO push_notifications VALUES ($1, $2, $3, $4, $5::text::jsonb, $6, $7)",
            rows,
        )
        await apply(conn, 11)
        got = await conn.fetch(
            "SELECT event_id, stream_ordering, actions::text, highlight, ts, user_ids, part"
            " FROM push_actions ORDER BY stream_ordering, part"
        )
        assert [tuple(r) for r in got] == [
            ("$e1", 1, '["notify"]', False, 10, ["@a:x", "@b:x"], 0),
            ("$e1", 1, '["notify", {"set_tweak": "highlight"}]', True, 10, ["@c:x"], 1),
            ("$e2", 2, '["notify"]', False, 20, ["@a:x"], 0),
        ]
        assert await conn.fetchval("SELECT to_regclass('push_notifications')") is None
