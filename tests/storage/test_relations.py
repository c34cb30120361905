"""storage/relations.py: the summary of a page's children in one query, and descendants."""

from __future__ import annotations

from typing import Any

from homeserver.protocol.relations import ENCRYPTED
from storage import relations as store
from storage.database import Database
from storage.events import insert_redaction
from tests.storage.rows import event, insert

R, OTHER = "!r:x", "!o:x"


def child(event_id: str, stream: int, rel_type: str, parent: str, *, sender: str = "@u:x",
          room: str = R, **row: Any) -> Any:
    content = {"m.relates_to": {"rel_type": rel_type, "event_id": parent},
               "m.new_content": {"body": "x"}}
    return event(event_id, room, stream=stream, content=content, sender=sender,
                 ts=stream * 100, **row)


async def test_one_query_summarises_edits_threads_and_references(db: Database) -> None:
    async with db.connection() as conn:
        await insert(
            conn, event("$a", R, stream=1), event("$b", R, stream=2),
            child("$e1", 3, "m.replace", "$a"), child("$e2", 4, "m.replace", "$a"),
            child("$t1", 5, "m.thread", "$b", sender="@v:x"),
            child("$t2", 6, "m.thread", "$b", sender="@w:x"),
            child("$t3", 7, "m.thread", "$b", sender="@ignored:x"),
            child("$ref", 8, "m.reference", "$a"), child("$react", 9, "m.annotation", "$a"),
            child("$elsewhere", 10, "m.replace", "$a", room=OTHER),
            child("$refused", 11, "m.thread", "$b", rejected=True),
            child("$gone", 12, "m.replace", "$a"), event("$redaction", R, stream=13),
        )
        await insert_redaction(conn, "$redaction", "$gone")
        summary = await store.get_relation_summary(
            conn, ["$a", "$b", "$lonely"], "@v:x", ["@ignored:x"]
        )
    assert {parent: (e.event_id, e.origin_server_ts) for parent, e in summary.edits.items()} \
        == {"$a": ("$e2", 400)}
    assert [(t.parent, t.latest_event, t.count, t.participated) for t in summary.threads] == [
        ("$b", "$t2", 2, True)
    ]
    assert summary.references == {"$a": ["$ref"]}


async def test_what_others_send_costs_no_rows(db: Database) -> None:
    """A flood of "edits" by another member, or of another type, or without `m.new_content`,
    costs no row and leaves the owner's edit the one summarised; references come the newest
    MAX_REFERENCES."""
    flood = [child(f"$x{i}", 10 + i, "m.replace", "$a", sender="@m:x") for i in range(30)]
    refs = [child(f"$r{i:03}", 100 + i, "m.reference", "$a", sender="@m:x")
            for i in range(store.MAX_REFERENCES + 20)]
    bare = {"m.relates_to": {"rel_type": "m.replace", "event_id": "$a"}}
    async with db.connection() as conn:
        await insert(
            conn, event("$a", R, stream=1), child("$own", 2, "m.replace", "$a"), *flood,
            child("$typed", 50, "m.replace", "$a", type="org.example.note"),
            event("$bare", R, stream=51, content=bare, ts=5100), *refs,
        )
        rows = await conn.fetch(store.GET_RELATION_SUMMARY, ["$a"], "@u:x", [],
                                ENCRYPTED, store.MAX_REFERENCES)
        summary = await store.get_relation_summary(conn, ["$a"], "@u:x", [])
    assert len(rows) == 1 + store.MAX_REFERENCES
    assert {parent: e.event_id for parent, e in summary.edits.items()} == {"$a": "$own"}
    assert summary.references == {"$a": [e.stored.event_id for e in refs[20:]]}


async def test_descendants_follow_generations_down_to_the_limit(db: Database) -> None:
    async with db.connection() as conn:
        await insert(
            conn, event("$root", R, stream=1), child("$g1", 2, "m.thread", "$root"),
            child("$g2", 3, "m.replace", "$g1"), child("$g3", 4, "m.annotation", "$g2"),
            child("$g4", 5, "m.annotation", "$g3"),
        )

        async def down(generations: int, rel_type: str | None = None) -> list[str]:
            found = await store.get_descendants(
                conn, R, "$root", rel_type=rel_type, event_type=None, after=0, before=99,
                limit=10, newest_first=False, generations=generations,
            )
            return [e.event_id for e in found]

        assert await down(1) == ["$g1"]
        assert await down(3) == ["$g1", "$g2", "$g3"]
        assert await down(3, "m.annotation") == ["$g3"]
