"""Parsed PDUs held in memory by event ID, bounded by entries and by the bytes of their JSON.

Theory of operation. Every read of an event (state for the auth rules, timelines, push rules)
goes through the room engine's `get_pdus`, which asks here first. Least recently used entries
go once either bound is passed: the byte bound keeps a room of 64 KiB events from holding
gigabytes, the entry bound keeps many tiny events (whose Python objects outweigh their JSON)
in check. An event changes only when it is redacted, which `discard`s it; `generation` moves
with every discard, so that a fill that read the database before the redaction committed can
tell not to store its stale copy.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from homeserver import metrics

DEFAULT_MAX_ENTRIES = 50_000


class EventCache:
    def __init__(self, *, max_bytes: int, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self._items: OrderedDict[str, tuple[dict[str, Any], int]] = OrderedDict()
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self.bytes = 0
        self.generation = 0
        self._hits = metrics.CACHE_REQUESTS.child("events", "hit")
        self._misses = metrics.CACHE_REQUESTS.child("events", "miss")
        self._entries_metric = metrics.CACHE_ENTRIES.child("events")
        self._bytes_metric = metrics.CACHE_SIZE_BYTES.child("events")

    def __len__(self) -> int:
        return len(self._items)

    def get(self, event_id: str) -> dict[str, Any] | None:
        item = self._items.get(event_id)
        if item is None:
            self._misses.value += 1
            return None
        self._hits.value += 1
        self._items.move_to_end(event_id)
        return item[0]

    def put(self, event_id: str, pdu: dict[str, Any], size: int) -> None:
        """Hold `pdu`, whose JSON is `size` bytes long (the measure of the byte bound)."""
        self._pop(event_id)
        self._items[event_id] = (pdu, size)
        self.bytes += size
        while len(self._items) > 1 and (
            len(self._items) > self._max_entries or self.bytes > self._max_bytes
        ):
            self.bytes -= self._items.popitem(last=False)[1][1]
        self._report()

    def discard(self, event_id: str) -> None:
        self._pop(event_id)
        self.generation += 1
        self._report()

    def clear(self) -> None:
        """Forget everything (redactions by another process may have been missed)."""
        self._items.clear()
        self.bytes = 0
        self.generation += 1
        self._report()

    def _pop(self, event_id: str) -> None:
        item = self._items.pop(event_id, None)
        if item is not None:
            self.bytes -= item[1]

    def _report(self) -> None:
        self._entries_metric.value = len(self._items)
        self._bytes_metric.value = self.bytes
