"""`url_previews`: the newest preview fetched at or before a time and still current then, and
the cleanup of expired ones."""

from __future__ import annotations

from storage import url_previews
from storage.database import Database

URL = "https://example.com/"


async def test_the_preview_current_at_a_time_and_the_cleanup(db: Database) -> None:
    async with db.connection() as conn:
        assert await url_previews.get_preview(conn, URL, 150) is None
        await url_previews.insert_preview(conn, URL, 100, 200, {"og:title": "one"}, None)
        await url_previews.insert_preview(conn, URL, 300, 400, {"og:title": "two"}, "m1")
        await url_previews.insert_preview(conn, "https://other.example/", 350, 450, {}, None)
        assert await url_previews.get_preview(conn, URL, 100) == {"og:title": "one"}
        assert await url_previews.get_preview(conn, URL, 199) == {"og:title": "one"}
        assert await url_previews.get_preview(conn, URL, 200) is None  # expired, not yet two
        assert await url_previews.get_preview(conn, URL, 399) == {"og:title": "two"}
        assert await url_previews.get_preview(conn, URL, 400) is None
        # The cut-off is inclusive: a preview that expired exactly at it goes.
        await url_previews.delete_expired(conn, 400)
        assert await url_previews.get_preview(conn, URL, 150) is None
        assert await url_previews.get_preview(conn, URL, 350) is None
        assert await url_previews.get_preview(conn, "https://other.example/", 400) == {}

