"""Full-text search: what gets indexed, stemming, the filters, redactions and paging."""

from __future__ import annotations

from typing import Any

import asyncpg

from storage import events as events_store
from storage import search
from storage.database import Database
from storage.search import SearchQuery
from tests.storage.rows import event, insert

R = "!r:x"


async def indexed(
    conn: asyncpg.Connection, n: int, text: str, *, type: str = "m.room.message",
    state_key: str | None = None, room: str = R, sender: str = "@u:x",
) -> None:
    """Event $n at position n, stored and indexed as the room engine does."""
    field = search.SEARCHABLE.get(type, ("", "body"))[1]
    new = event(f"${n}", room, stream=n, type=type, state_key=state_key, sender=sender,
                content={field: text})
    await insert(conn, new)
    pdu = {"type": type, "content": {field: text}}
    if state_key is not None:
        pdu["state_key"] = state_key
    await search.index_events(conn, [(f"${n}", room, n, pdu)])


def query(term: str, **kw: Any) -> SearchQuery:
    fields: dict[str, Any] = {
        "room_ids": [R], "keys": search.SEARCH_KEYS, "types": None, "senders": None,
        "not_senders": [], "limit": 10, **kw,
    }
    return SearchQuery(term, **fields)


async def found(conn: asyncpg.Connection, term: str, **kw: Any) -> list[str]:
    return [h.event_id for h in await search.search_by_recent(conn, query(term, **kw), 100)]


async def test_only_plain_text_fields_of_searchable_events_are_indexed(db: Database) -> None:
    async with db.connection() as conn:
        await indexed(conn, 1, "martian chronicles")
        await indexed(conn, 2, "martian room", type="m.room.name", state_key="")
        await indexed(conn, 3, "martian topic", type="m.room.topic", state_key="not-empty")
        await indexed(conn, 4, "martian secret", type="m.room.encrypted")
        await indexed(conn, 5, "martian\x00nul")
        await search.index_events(conn, [("$1", R, 1, {"type": "m.room.message",
                                                       "content": {"body": "again"}})])
        # Stemming: "Martians" finds "martian".
        assert await found(conn, "Martians") == ["$5", "$2", "$1"]
        assert await found(conn, "martian", keys=["content.name"]) == ["$2"]
        assert await found(conn, "again") == []  # indexed once, as first written
        assert await search.get_query_lexemes(conn, "Martians walking") == ["martian", "walk"]


async def test_filters_redactions_and_deletions_hide_matches(db: Database) -> None:
    async with db.connection() as conn:
        await indexed(conn, 1, "cake", sender="@a:x")
        await indexed(conn, 2, "cake", sender="@b:x")
        await indexed(conn, 3, "cake", room="!other:x")
        await indexed(conn, 4, "cake", sender="@c:x")
        await indexed(conn, 5, "cake", sender="@d:x")
        assert await found(conn, "cake", senders=["@a:x", "@b:x"]) == ["$2", "$1"]
        assert await found(conn, "cake", not_senders=["@b:x"]) == ["$5", "$4", "$1"]
        assert await found(conn, "cake", room_ids=[R, "!other:x"], types=["m.room.topic"]) == []

        await insert(conn, event("$redaction", R, stream=6, type="m.room.redaction"))
        await events_store.insert_redaction(conn, "$redaction", "$4")
        await search.delete_events(conn, ["$5"])
        await search.delete_events(conn, [])
        assert await found(conn, "cake") == ["$2", "$1"]


async def test_pages_by_rank_or_by_recency_with_the_total_before_paging(db: Database) -> None:
    async with db.connection() as conn:
        await indexed(conn, 1, "tea")
        await indexed(conn, 2, "tea and more tea, tea all day")
        await indexed(conn, 3, "tea")
        await indexed(conn, 4, "coffee")
        ranked = await search.search_by_rank(conn, query("tea", limit=2), 0)
        assert [(h.event_id, h.total) for h in ranked] == [("$2", 3), ("$3", 3)]
        assert ranked[0].rank > ranked[1].rank
        rest = await search.search_by_rank(conn, query("tea", limit=2), 2)
        assert [h.event_id for h in rest] == ["$1"]
        recent = await search.search_by_recent(conn, query("tea", limit=2), 3)
        assert [(h.event_id, h.stream_ordering) for h in recent] == [("$2", 2), ("$1", 1)]
