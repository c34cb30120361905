"""What the admin media API reads and changes of `local_media`: one user's media listed and
sorted, quarantine and protection flags, the media a room's events point at, and the media
old and large enough to delete. Deleting rows and files is the media service's (storage.media).
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

# `order_by` values of Synapse's admin API and the column each sorts by; ties by media ID.
ORDER_COLUMNS = {
    "media_id": "media_id",
    "upload_name": "upload_name",
    "created_ts": "created_ts",
    "last_access_ts": "last_access_ts",
    "media_length": "size_bytes",
    "media_type": "content_type",
    "quarantined_by": "quarantined_by",
    "safe_from_quarantine": "safe_from_quarantine",
}


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """A local media ID as the admin API shows it."""

    media_id: str
    user_id: str | None
    created_ts: int
    content_hash: str | None
    content_type: str | None
    upload_name: str | None
    size_bytes: int | None
    last_access_ts: int | None
    quarantined_by: str | None
    safe_from_quarantine: bool


_INFO_COLUMNS = """media_id, user_id, created_ts, content_hash, content_type, upload_name,
       size_bytes, last_access_ts, quarantined_by, safe_from_quarantine"""

GET_MEDIA_INFO = f"SELECT {_INFO_COLUMNS} FROM local_media WHERE media_id = $1"


async def get_media_info(conn: asyncpg.Connection, media_id: str) -> MediaInfo | None:
    row = await conn.fetchrow(GET_MEDIA_INFO, media_id)
    return None if row is None else MediaInfo(**dict(row))


# Uploaded media only: an ID reserved by /create and never filled is nothing to list.
LIST_USER_MEDIA = f"""
SELECT {_INFO_COLUMNS} FROM local_media
WHERE user_id = $1 AND content_hash IS NOT NULL
ORDER BY {{column}} {{direction}}, media_id ASC
OFFSET $2 LIMIT $3
"""


async def list_user_media(
    conn: asyncpg.Connection, user_id: str, order_by: str, backwards: bool, offset: int,
    limit: int,
) -> list[MediaInfo]:
    """A page of `user_id`'s media sorted by `order_by` (a key of ORDER_COLUMNS)."""
    sql = LIST_USER_MEDIA.format(
        column=ORDER_COLUMNS[order_by], direction="DESC" if backwards else "ASC"
    )
    rows = await conn.fetch(sql, user_id, offset, limit)
    return [MediaInfo(**dict(row)) for row in rows]


COUNT_USER_MEDIA = """
SELECT count(*) FROM local_media WHERE user_id = $1 AND content_hash IS NOT NULL
"""


async def count_user_media(conn: asyncpg.Connection, user_id: str) -> int:
    count: int = await conn.fetchval(COUNT_USER_MEDIA, user_id)
    return count


# Protected media is left alone; media already quarantined keeps the admin who did it first.
QUARANTINE_MEDIA = """
UPDATE local_media SET quarantined_by = coalesce(quarantined_by, $2)
WHERE media_id = ANY($1::text[]) AND NOT safe_from_quarantine
"""


async def quarantine_media(conn: asyncpg.Connection, media_ids: list[str], admin: str) -> int:
    """Quarantine those of `media_ids` not protected; how many that is."""
    result: str = await conn.execute(QUARANTINE_MEDIA, media_ids, admin)
    return int(result.split()[-1])


QUARANTINE_USER_MEDIA = """
UPDATE local_media SET quarantined_by = coalesce(quarantined_by, $2)
WHERE user_id = $1 AND NOT safe_from_quarantine
"""


async def quarantine_user_media(conn: asyncpg.Connection, user_id: str, admin: str) -> int:
    """Quarantine every media `user_id` uploaded that is not protected; how many."""
    result: str = await conn.execute(QUARANTINE_USER_MEDIA, user_id, admin)
    return int(result.split()[-1])


UNQUARANTINE_MEDIA = "UPDATE local_media SET quarantined_by = NULL WHERE media_id = $1"


async def unquarantine_media(conn: asyncpg.Connection, media_id: str) -> None:
    await conn.execute(UNQUARANTINE_MEDIA, media_id)


SET_PROTECTED = "UPDATE local_media SET safe_from_quarantine = $2 WHERE media_id = $1"


async def set_protected(conn: asyncpg.Connection, media_id: str, protected: bool) -> None:
    await conn.execute(SET_PROTECTED, media_id, protected)


# Every string in an event's content that is an mxc:// URI, wherever it sits (`url`,
# `info.thumbnail_url`, `avatar_url`, in replies and edits' `m.new_content` alike).
GET_ROOM_MXC_URIS = """
SELECT DISTINCT uri #>> '{}' AS uri
FROM events,
     jsonb_path_query(
         json::jsonb -> 'content',
         'strict $.** ? (@.type() == "string" && @ starts with "mxc://")'
     ) AS uri
WHERE room_id = $1
"""


async def get_room_mxc_uris(conn: asyncpg.Connection, room_id: str) -> list[str]:
    """The mxc:// URIs the content of the room's events holds."""
    rows = await conn.fetch(GET_ROOM_MXC_URIS, room_id)
    return [row["uri"] for row in rows]


# The mxc:// URIs in use as an avatar: users' profiles, and rooms' and members' avatars in
# the current state of every room.
AVATAR_URIS = """
SELECT avatar_url AS uri FROM profiles WHERE avatar_url IS NOT NULL
UNION
SELECT e.json::jsonb #>> '{content,url}' FROM current_state AS cs
JOIN events AS e ON e.event_id = cs.event_id WHERE cs.type = 'm.room.avatar'
UNION
SELECT e.json::jsonb #>> '{content,avatar_url}' FROM current_state AS cs
JOIN events AS e ON e.event_id = cs.event_id WHERE cs.type = 'm.room.member'
"""

# Last downloaded (or, never downloaded, uploaded) before $1, larger than $2 bytes, neither
# protected nor quarantined (quarantine is kept as evidence until deleted on purpose).
GET_STALE_MEDIA = """
SELECT media_id FROM local_media
WHERE content_hash IS NOT NULL
  AND coalesce(last_access_ts, created_ts) < $1 AND size_bytes > $2
  AND NOT safe_from_quarantine AND quarantined_by IS NULL
"""
KEEP_AVATARS = f"""
  AND $3 || media_id NOT IN (SELECT uri FROM ({AVATAR_URIS}) AS avatars WHERE uri IS NOT NULL)
"""


async def get_stale_media(
    conn: asyncpg.Connection, before_ts: int, size_gt: int, keep_avatars_of: str | None
) -> list[str]:
    """Media IDs to delete by age and size; with `keep_avatars_of` (the `mxc://server/`
    prefix of local media), none in use as an avatar."""
    if keep_avatars_of is None:
        rows = await conn.fetch(GET_STALE_MEDIA, before_ts, size_gt)
    else:
        rows = await conn.fetch(
            GET_STALE_MEDIA + KEEP_AVATARS, before_ts, size_gt, keep_avatars_of
        )
    return [row["media_id"] for row in rows]


GET_TOTAL_SIZE = "SELECT coalesce(sum(size_bytes), 0) FROM local_media WHERE media_id = ANY($1)"


async def get_total_size(conn: asyncpg.Connection, media_ids: list[str]) -> int:
    """The bytes the media IDs hold (each counted, though equal bytes share one file)."""
    return int(await conn.fetchval(GET_TOTAL_SIZE, media_ids))
