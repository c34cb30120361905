"""Two small bounds on what strangers can make the federation code remember or do.

:class:`LruDict` keeps per-server state (the last key-fetch attempt, its error) for at most
``size`` servers, forgetting the least recently used: made-up origins are free to invent, so
anything keyed by them must be bounded. :class:`WindowBudget` allows ``limit`` actions per
window of ``window_s`` seconds (the clock is passed in), for work that unknown servers can
trigger, such as fetching their keys.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

from homeserver.services.clock import Clock

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LruDict(Generic[K, V]):
    """A mapping of at most ``size`` entries; setting one evicts the least recently used."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def set(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def pop(self, key: K) -> None:
        self._items.pop(key, None)

    def __len__(self) -> int:
        return len(self._items)


class WindowBudget:
    """``limit`` actions per fixed window of ``window_s`` seconds."""

    def __init__(self, limit: int, window_s: float, clock: Clock) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._window_start = clock.monotonic()
        self._used = 0

    def take(self) -> bool:
        """Spend one action if the current window has one left."""
        now = self._clock.monotonic()
        if now - self._window_start >= self.window_s:
            self._window_start, self._used = now, 0
        if self._used >= self.limit:
            return False
        self._used += 1
        return True
