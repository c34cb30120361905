"""The `local_media` and `media_thumbnails` tables: what each media ID and thumbnail points at.

The bytes themselves are files named by their SHA-256 (the media service's content store);
these rows only map IDs to hashes (`storage.remote_media` maps other servers' cached media the
same way, into the same files). A row with a NULL `content_hash` is an ID reserved by
`POST /create` whose upload has not arrived yet. A file may be removed once no row uses it;
`lock_contents` serializes that check with the inserts that start using a file.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class MediaRow:
    media_id: str
    user_id: str | None  # None: the server's own (a URL preview's image)
    created_ts: int
    unused_expires_ts: int | None
    content_hash: str | None
    content_type: str | None
    upload_name: str | None
    size_bytes: int | None
    quarantined_by: str | None = None  # the admin who quarantined it: served to no one
    last_access_ts: int | None = None  # last download (recorded once per a while); None: never


@dataclass(frozen=True, slots=True)
class Content:
    """What an upload stored: the file's hash and length and what the uploader said of it."""

    content_hash: str
    size_bytes: int
    content_type: str
    upload_name: str | None


@dataclass(frozen=True, slots=True)
class ThumbnailRow:
    thumbnail_hash: str
    content_type: str


INSERT_UPLOADED = """
INSERT INTO local_media (media_id, user_id, created_ts, content_hash, content_type, upload_name,
                         size_bytes, uploaded_ts)
VALUES ($1, $2, $3, $4, $5, $6, $7, $3)
"""


async def insert_uploaded(
    conn: asyncpg.Connection, media_id: str, user_id: str | None, now_ts: int, content: Content
) -> None:
    await conn.execute(
        INSERT_UPLOADED, media_id, user_id, now_ts, content.content_hash, content.content_type,
        content.upload_name, content.size_bytes,
    )


INSERT_PENDING = """
INSERT INTO local_media (media_id, user_id, created_ts, unused_expires_ts) VALUES ($1, $2, $3, $4)
"""


async def insert_pending(
    conn: asyncpg.Connection, media_id: str, user_id: str, now_ts: int, expires_ts: int
) -> None:
    await conn.execute(INSERT_PENDING, media_id, user_id, now_ts, expires_ts)


COUNT_PENDING = """
SELECT count(*) FROM local_media
WHERE user_id = $1 AND content_hash IS NULL AND unused_expires_ts > $2
"""


async def count_pending(conn: asyncpg.Connection, user_id: str, now_ts: int) -> int:
    """How many IDs `user_id` reserved that are neither uploaded nor expired."""
    count: int = await conn.fetchval(COUNT_PENDING, user_id, now_ts)
    return count


COMPLETE_PENDING = """
UPDATE local_media
SET content_hash = $3, content_type = $4, upload_name = $5, size_bytes = $6, uploaded_ts = $7
WHERE media_id = $1 AND user_id = $2 AND content_hash IS NULL
"""


async def complete_pending(
    conn: asyncpg.Connection, media_id: str, user_id: str, now_ts: int, content: Content
) -> bool:
    """Fill in a reserved ID; False if it was filled meanwhile (the first upload wins)."""
    result: str = await conn.execute(
        COMPLETE_PENDING, media_id, user_id, content.content_hash, content.content_type,
        content.upload_name, content.size_bytes, now_ts,
    )
    return result != "UPDATE 0"


GET_MEDIA = """
SELECT media_id, user_id, created_ts, unused_expires_ts, content_hash, content_type,
       upload_name, size_bytes, quarantined_by, last_access_ts
FROM local_media WHERE media_id = $1
"""


async def get_media(conn: asyncpg.Connection, media_id: str) -> MediaRow | None:
    row = await conn.fetchrow(GET_MEDIA, media_id)
    return None if row is None else MediaRow(**dict(row))


GET_SERVER_MEDIA = """
SELECT media_id FROM local_media
WHERE user_id IS NULL AND content_hash = $1 AND content_type = $2
LIMIT 1
"""


async def get_server_media(
    conn: asyncpg.Connection, content_hash: str, content_type: str
) -> str | None:
    """A media ID the server already keeps these bytes under, as its own."""
    media_id: str | None = await conn.fetchval(GET_SERVER_MEDIA, content_hash, content_type)
    return media_id


GET_THUMBNAIL = """
SELECT thumbnail_hash, content_type FROM media_thumbnails
WHERE source_hash = $1 AND width = $2 AND height = $3 AND method = $4
"""


async def get_thumbnail(
    conn: asyncpg.Connection, source_hash: str, width: int, height: int, method: str
) -> ThumbnailRow | None:
    row = await conn.fetchrow(GET_THUMBNAIL, source_hash, width, height, method)
    return None if row is None else ThumbnailRow(row["thumbnail_hash"], row["content_type"])


COUNT_THUMBNAILS = "SELECT count(*) FROM media_thumbnails WHERE source_hash = $1"


async def count_thumbnails(conn: asyncpg.Connection, source_hash: str) -> int:
    result: int = await conn.fetchval(COUNT_THUMBNAILS, source_hash)
    return result


INSERT_THUMBNAIL = """
INSERT INTO media_thumbnails (source_hash, width, height, method, thumbnail_hash, content_type)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT DO NOTHING
"""


async def insert_thumbnail(
    conn: asyncpg.Connection, source_hash: str, width: int, height: int, method: str,
    thumbnail: ThumbnailRow,
) -> None:
    """Remember a thumbnail; two requests that made the same one at once both succeed."""
    await conn.execute(
        INSERT_THUMBNAIL, source_hash, width, height, method, thumbnail.thumbnail_hash,
        thumbnail.content_type,
    )


TOUCH_MEDIA = """
UPDATE local_media SET last_access_ts = $2::bigint
WHERE media_id = $1 AND (last_access_ts IS NULL OR last_access_ts <= $2::bigint - $3::bigint)
"""


async def touch_media(
    conn: asyncpg.Connection, media_id: str, now_ts: int, granularity_ms: int
) -> None:
    """Record a download, at most once per `granularity_ms` (a download is not worth a write)."""
    await conn.execute(TOUCH_MEDIA, media_id, now_ts, granularity_ms)


# Two-key advisory locks, the first key naming this use; in hash order, so that two
# transactions locking several files cannot deadlock on them.
LOCK_CONTENTS = """
SELECT pg_advisory_xact_lock(hashtext('media_content'), hashtext(h))
FROM (SELECT DISTINCT h FROM unnest($1::text[]) AS h ORDER BY h) AS hashes
"""


async def lock_contents(conn: asyncpg.Connection, content_hashes: list[str]) -> None:
    """Hold the files of `content_hashes` until the transaction ends: no file is removed
    while a row starting to use it is being inserted."""
    await conn.execute(LOCK_CONTENTS, content_hashes)


DELETE_MEDIA = """
DELETE FROM local_media WHERE media_id = ANY($1::text[]) RETURNING media_id, content_hash
"""


async def delete_media(
    conn: asyncpg.Connection, media_ids: list[str]
) -> list[tuple[str, str | None]]:
    """Delete the rows of `media_ids`; the deleted IDs with their content hashes."""
    rows = await conn.fetch(DELETE_MEDIA, media_ids)
    return [(row["media_id"], row["content_hash"]) for row in rows]


GET_CONTENTS_IN_USE = """
SELECT content_hash FROM local_media WHERE content_hash = ANY($1::text[])
UNION
SELECT content_hash FROM remote_media WHERE content_hash = ANY($1::text[])
"""


async def get_contents_in_use(conn: asyncpg.Connection, content_hashes: list[str]) -> set[str]:
    """Which of `content_hashes` some media ID (local, or another server's cached) still has
    as its content."""
    rows = await conn.fetch(GET_CONTENTS_IN_USE, content_hashes)
    return {row["content_hash"] for row in rows}


GET_FILES_IN_USE = """
SELECT content_hash AS hash FROM local_media WHERE content_hash = ANY($1::text[])
UNION
SELECT content_hash FROM remote_media WHERE content_hash = ANY($1::text[])
UNION
SELECT thumbnail_hash FROM media_thumbnails WHERE thumbnail_hash = ANY($1::text[])
"""


async def get_files_in_use(conn: asyncpg.Connection, content_hashes: list[str]) -> set[str]:
    """Which of `content_hashes` a media ID or a thumbnail still uses."""
    rows = await conn.fetch(GET_FILES_IN_USE, content_hashes)
    return {row["hash"] for row in rows}


DELETE_THUMBNAILS = """
DELETE FROM media_thumbnails WHERE source_hash = ANY($1::text[]) RETURNING thumbnail_hash
"""


async def delete_thumbnails(conn: asyncpg.Connection, source_hashes: list[str]) -> set[str]:
    """Forget every thumbnail of `source_hashes`; the hashes of their files."""
    rows = await conn.fetch(DELETE_THUMBNAILS, source_hashes)
    return {row["thumbnail_hash"] for row in rows}
GET_UPLOADED_BY = """
SELECT media_id, user_id, created_ts, unused_expires_ts, content_hash, content_type,
       upload_name, size_bytes
FROM local_media WHERE user_id = $1 AND content_hash IS NOT NULL ORDER BY created_ts, media_id
"""


async def get_uploaded_by(conn: asyncpg.Connection, user_id: str) -> list[MediaRow]:
    """The media the user uploaded (IDs reserved by /create and never filled left out)."""
    return [MediaRow(*r) for r in await conn.fetch(GET_UPLOADED_BY, user_id)]
