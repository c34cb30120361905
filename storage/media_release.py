"""The `media_release_candidates` table: local media a censored event referred to, which the
media retention sweep deletes once nothing refers to it any more.

Recording a candidate is cheap and happens where an event loses its content (a redaction, a
purge); the costly question, whether any other event still holds the `mxc://` URI, is asked
by the sweep, a few candidates at a time.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from storage.admin_media import AVATAR_URIS

ADD_CANDIDATES = """
INSERT INTO media_release_candidates (media_id, since_ts)
SELECT media_id, $2 FROM unnest($1::text[]) AS c(media_id)
ON CONFLICT (media_id) DO UPDATE SET since_ts = greatest(media_release_candidates.since_ts,
                                                         excluded.since_ts)
"""


async def add_media_candidates(
    conn: asyncpg.Connection, media_ids: Sequence[str], ts: int
) -> None:
    """Record local media IDs that an event censored at `ts` referred to (the caller keeps
    only local ones: `protocol.media_refs.local_media_ids`)."""
    if media_ids:
        await conn.execute(ADD_CANDIDATES, sorted(set(media_ids)), ts)


GET_CANDIDATES = """
SELECT media_id FROM media_release_candidates ORDER BY since_ts, media_id LIMIT $1
"""


async def get_candidates(conn: asyncpg.Connection, limit: int) -> list[str]:
    """The oldest candidates (each is deleted once looked at, used or not: a reference that
    remains is recorded again when its own event is censored)."""
    return [r["media_id"] for r in await conn.fetch(GET_CANDIDATES, limit)]


# Still referred to: by the JSON of an event this server holds (censored events no longer
# hold the URI, so any match is a live reference; the scan stops at the first), or by an
# avatar in use. Protected media is never released, nor quarantined media (kept as evidence
# until an admin deletes it).
GET_STILL_USED = f"""
SELECT c.media_id FROM unnest($1::text[]) AS c(media_id)
WHERE EXISTS (SELECT 1 FROM events e WHERE strpos(e.json, $2 || c.media_id || '"') > 0)
   OR $2 || c.media_id IN (SELECT uri FROM ({AVATAR_URIS}) AS avatars WHERE uri IS NOT NULL)
   OR EXISTS (SELECT 1 FROM local_media m
              WHERE m.media_id = c.media_id
                AND (m.safe_from_quarantine OR m.quarantined_by IS NOT NULL))
"""


async def get_still_used(
    conn: asyncpg.Connection, media_ids: Sequence[str], mxc_prefix: str
) -> set[str]:
    """Which of `media_ids` (local, `mxc_prefix` being `mxc://<server>/`) something still
    refers to, or that is protected or quarantined."""
    rows = await conn.fetch(GET_STILL_USED, list(media_ids), mxc_prefix)
    return {r["media_id"] for r in rows}


DELETE_CANDIDATES = "DELETE FROM media_release_candidates WHERE media_id = ANY($1::text[])"


async def delete_candidates(conn: asyncpg.Connection, media_ids: Sequence[str]) -> None:
    if media_ids:
        await conn.execute(DELETE_CANDIDATES, list(media_ids))
