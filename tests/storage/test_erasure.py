"""An erasure reaches every table that names a user: a table added with such a column fails
here until `storage.erasure` erases from it, names the service that does, or says why it
keeps it."""

from __future__ import annotations

import re

from storage import erasure
from storage.database import Database

USER_TABLES = """
SELECT DISTINCT table_name FROM information_schema.columns
WHERE table_schema = 'public'
  AND (column_name LIKE '%user%' OR column_name IN ('sender', 'creator', 'reporter', 'state_key'))
  AND column_name <> 'last_seen_user_agent'
"""


async def test_every_table_naming_a_user_is_erased_or_kept(db: Database) -> None:
    async with db.connection() as conn:
        tables = {r["table_name"] for r in await conn.fetch(USER_TABLES)}
    erased = {
        m.group(1) for statement in erasure.ERASE_STATEMENTS
        for m in [re.search(r"(?:DELETE FROM|UPDATE) (\w+)", statement)] if m is not None
    }
    accounted = erased | set(erasure.ERASED_ELSEWHERE) | set(erasure.KEPT)
    assert tables - accounted == set()
    # No list names a table that is gone (event_search has no user column: reached by sender).
    assert accounted - tables == {"event_search"}
