"""Other servers' directory pages, kept for a short while: a room directory browsed by many
users of this server (each scrolling, each search re-run as they type) asks its server once per
page and query every `TTL_S`, as Synapse's 30-second cache of remote `publicRooms` does.

Pages are what other servers chose to send and the servers are whatever users name, so the
cache is bounded by the bytes it holds (`MAX_BYTES`, each page weighed by its JSON together
with its key: a user's search terms are held too), forgetting the least recently stored first;
a page heavier than the whole bound is not kept.
"""

from __future__ import annotations

import dataclasses
import json
from collections import OrderedDict
from typing import Any

from homeserver.protocol.public_rooms import PublicRoomsQuery
from homeserver.services.clock import Clock

TTL_S = 30.0
MAX_BYTES = 16 * 1024 * 1024

Key = tuple[str, PublicRoomsQuery]


def weight_of(server: str, query: PublicRoomsQuery, page: dict[str, Any]) -> int:
    """What a page and its key cost, about: their JSON's length."""
    return len(json.dumps([server, dataclasses.astuple(query), page]))


class RemoteDirectoryPages:
    def __init__(self, clock: Clock, *, ttl_s: float = TTL_S, max_bytes: int = MAX_BYTES) -> None:
        self.clock = clock
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self.held_bytes = 0
        # (server, query) -> (expiry, page, its weight)
        self._pages: OrderedDict[Key, tuple[float, dict[str, Any], int]] = OrderedDict()

    def get(self, server: str, query: PublicRoomsQuery) -> dict[str, Any] | None:
        found = self._pages.get((server, query))
        if found is None:
            return None
        if found[0] <= self.clock.monotonic():
            self._forget((server, query))
            return None
        return found[1]

    def put(self, server: str, query: PublicRoomsQuery, page: dict[str, Any]) -> None:
        weight = weight_of(server, query, page)
        self._forget((server, query))
        if weight > self.max_bytes:
            return
        self._pages[(server, query)] = (self.clock.monotonic() + self.ttl_s, page, weight)
        self.held_bytes += weight
        while self.held_bytes > self.max_bytes:
            self._forget(next(iter(self._pages)))

    def _forget(self, key: Key) -> None:
        found = self._pages.pop(key, None)
        if found is not None:
            self.held_bytes -= found[2]
