"""Media IDs: reserved IDs count until they expire or are filled, the first upload into one
wins, and thumbnails are recorded once."""

from __future__ import annotations

import asyncpg
import pytest

from storage import media
from storage.database import Database
from storage.media import Content, ThumbnailRow

U = "@u:x"


def content(tag: str) -> Content:
    return Content(f"hash-{tag}", len(tag), "text/plain", f"{tag}.txt")


async def test_reserved_ids_are_filled_once_by_their_owner(db: Database) -> None:
    async with db.connection() as conn:
        await media.insert_pending(conn, "m1", U, 100, expires_ts=200)
        await media.insert_pending(conn, "m2", U, 100, expires_ts=150)
        await media.insert_pending(conn, "m3", "@other:x", 100, expires_ts=200)
        assert await media.count_pending(conn, U, 149) == 2
        assert await media.count_pending(conn, U, 150) == 1  # m2 expired

        assert not await media.complete_pending(conn, "m1", "@other:x", 120, content("x"))
        assert await media.complete_pending(conn, "m1", U, 120, content("first"))
        assert not await media.complete_pending(conn, "m1", U, 130, content("second"))
        assert await media.count_pending(conn, U, 100) == 1
        assert await media.get_media(conn, "m1") == media.MediaRow(
            "m1", U, 100, 200, "hash-first", "text/plain", "first.txt", 5
        )


async def test_an_upload_is_read_back_and_ids_are_unique(db: Database) -> None:
    async with db.connection() as conn:
        await media.insert_uploaded(conn, "m", U, 7, content("abc"))
        row = await media.get_media(conn, "m")
        assert row is not None
        assert (row.content_hash, row.size_bytes, row.unused_expires_ts) == ("hash-abc", 3, None)
        assert await media.get_media(conn, "missing") is None
        with pytest.raises(asyncpg.UniqueViolationError):
            await media.insert_pending(conn, "m", U, 8, expires_ts=9)


async def test_a_thumbnail_made_twice_is_stored_once(db: Database) -> None:
    async with db.connection() as conn:
        first, second = ThumbnailRow("t1", "image/png"), ThumbnailRow("t2", "image/png")
        await media.insert_thumbnail(conn, "src", 32, 32, "crop", first)
        await media.insert_thumbnail(conn, "src", 32, 32, "crop", second)
        await media.insert_thumbnail(conn, "src", 32, 32, "scale", second)
        assert await media.get_thumbnail(conn, "src", 32, 32, "crop") == first
        assert await media.get_thumbnail(conn, "src", 64, 64, "crop") is None
        assert await media.count_thumbnails(conn, "src") == 2
