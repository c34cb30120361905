"""The redaction sweep: no content a redaction removed outlives `redactions.retention_period_ms`.

Theory of operation. Moot erases a redacted event's content when the redaction takes effect
(`services.censoring`: the stored row is rewritten to its redacted form and its search row
deleted), which is stricter than any retention period. Two kinds of rows escape that path,
and this sweep, run every `retention.purge_interval_ms`, rewrites them:

- rows of a database written before redacted rows were censored (served redacted, but still
  holding the original in the table);
- the edits (`m.replace` by the same sender) of a redacted message: the spec does not redact
  them, but each holds the text that replaced the message's, which the sender removed.

It walks the redactions in stream order from where it stopped (from the start after a
restart, so the backlog is covered once per process) in batches, censors what still holds
content (the rows, their search entries, the caches of every process) and hands the local
media they referred to to the media sweep.
"""

from __future__ import annotations

import functools
import json

import asyncpg

from homeserver.protocol.media_refs import local_media_ids
from homeserver.protocol.redaction import redacted_json
from homeserver.services.censoring import forget_in_appservice_transactions
from homeserver.services.retention_sweeps import SweepResult
from homeserver.services.rooms.cache import RoomCache
from storage import events as events_store
from storage import media_release
from storage import redactions as store
from storage import search as search_store
from storage.database import Database

# Redactions read per transaction.
BATCH = 500
# Where a walk starts: below every stream position (backfilled events may sit below 0).
START = -(2**63)


class RedactionSweep:
    def __init__(self, db: Database, cache: RoomCache) -> None:
        self._db = db
        self._cache = cache
        self._position = START  # the last redaction looked at

    async def sweep(self, now_ms: int) -> SweepResult:
        """Censor what every redaction after the last one looked at left uncensored."""
        total = SweepResult()
        while True:
            batch = await self._db.run(
                lambda conn: store.get_redactions_after(conn, self._position, BATCH),
                name="redaction_sweep_read",
            )
            if not batch:
                return total
            rows = await self._db.transaction(
                functools.partial(self._censor, batch=batch, now_ms=now_ms),
                name="redaction_sweep",
            )
            self._forget_cached(rows)
            total = SweepResult(
                total.purged + len(rows),
                total.purged_bytes + sum(len(old) - len(new) for _, _, old, new in rows),
            )
            self._position = batch[-1].position

    async def _censor(
        self, conn: asyncpg.Connection, batch: list[store.Redacted], now_ms: int
    ) -> list[tuple[str, str, str, str]]:
        """Censor the rows of `batch` that still hold content; (event_id, room_id, old JSON,
        new JSON) of each."""
        rows = []
        media: set[str] = set()
        for row in await store.get_uncensored(conn, batch):
            version = await self._cache.room_version(conn, row.room_id)
            original = json.loads(row.json)
            pruned = redacted_json(original, version)
            if pruned == row.json:
                continue
            rows.append((row.event_id, row.room_id, row.json, pruned))
            content = original.get("content")
            if isinstance(content, dict):
                media |= local_media_ids(content, self._cache.server_name)
        await events_store.censor_events(conn, [(e, r, new) for e, r, _, new in rows])
        await search_store.delete_events(conn, [e for e, _, _, _ in rows])
        await forget_in_appservice_transactions(conn, [e for e, _, _, _ in rows])
        await media_release.add_media_candidates(conn, sorted(media), now_ms)
        return rows

    def _forget_cached(self, rows: list[tuple[str, str, str, str]]) -> None:
        by_room: dict[str, dict[str, str]] = {}
        for event_id, room_id, _, new in rows:
            by_room.setdefault(room_id, {})[event_id] = new
        for room_id, censored in by_room.items():
            self._cache.censored(room_id, censored)
