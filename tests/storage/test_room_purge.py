"""A room's purge reaches every table that names a room or an event: a table added with such
a column fails here until `storage.room_purge` deletes from it or says why it keeps it."""

from __future__ import annotations

import re

from storage import room_purge
from storage.database import Database

REFERRING_TABLES = """
SELECT DISTINCT table_name FROM information_schema.columns
WHERE table_schema = 'public'
  AND column_name IN ('room_id', 'event_id', 'redacts', 'redaction_id', 'prev_event_id',
                      'auth_event_id', 'state_group')
"""


async def test_every_table_naming_a_room_or_event_is_purged_or_kept(db: Database) -> None:
    async with db.connection() as conn:
        tables = {r["table_name"] for r in await conn.fetch(REFERRING_TABLES)}
    purged = {
        m.group(1) for statement in room_purge.PURGE_STATEMENTS
        for m in [re.search(r"DELETE FROM (\w+)", statement)] if m is not None
    }
    accounted = purged | set(room_purge.CASCADED) | set(room_purge.KEPT)
    assert tables - accounted == set()
    assert accounted - tables == set()  # no statement names a table that is gone
