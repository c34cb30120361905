"""A bounded in-memory cache of values loaded from the database, safe against racing changes.

Theory of operation. A value is loaded on a miss (`get_or_load`) and dropped by the code that
changes it (`invalidate`), after that change committed. A load is an await, so a change can
commit while one is in flight, after it read the old value: such a load is marked stale and its
result is returned to its caller but not kept. Only keys with a load in flight are tracked for
this, so the bookkeeping stays as small as the cache.

Its metrics carry `name` (one of `metrics.CACHES`): a hit is a key answered from memory by
`get_or_load`, `get_many` or `lookup`; a miss is a key loaded. `peek` counts nothing, as its
callers look to update what is held, not to read it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

from homeserver import metrics

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class FillCache(Generic[K, V]):
    def __init__(self, name: str, size: int) -> None:
        assert name in metrics.CACHES, name
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._loading: dict[K, int] = {}
        self._stale: set[K] = set()
        self._hits = metrics.CACHE_REQUESTS.child(name, "hit")
        self._misses = metrics.CACHE_REQUESTS.child(name, "miss")
        self._entries = metrics.CACHE_ENTRIES.child(name)

    def peek(self, key: K) -> V | None:
        return self._items.get(key)

    def lookup(self, key: K) -> V | None:
        """`peek`, counted as a hit when found (the caller loads what is not, as a miss)."""
        value = self._items.get(key)
        if value is not None:
            self._hits.value += 1
        return value

    async def get_or_load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        if key in self._items:
            self._hits.value += 1
            self._items.move_to_end(key)
            return self._items[key]

        async def load_one(keys: Sequence[K]) -> dict[K, V]:
            return {key: await load()}

        return (await self.load_many([key], load_one))[key]

    async def get_many(
        self, keys: Sequence[K], load: Callable[[Sequence[K]], Awaitable[dict[K, V]]]
    ) -> dict[K, V]:
        """Each key's value: those held from here, all the others with one `load_many`."""
        found = {key: value for key in keys if (value := self._items.get(key)) is not None}
        missing = [key for key in keys if key not in found]
        self._hits.value += len(found)
        if missing:
            found.update(await self.load_many(missing, load))
        return found

    async def load_many(
        self, keys: Sequence[K], load: Callable[[Sequence[K]], Awaitable[dict[K, V]]]
    ) -> dict[K, V]:
        """Load `keys` with one call (it must return a value for each) and keep those no
        change touched meanwhile."""
        self._misses.value += len(keys)
        for key in keys:
            self._loading[key] = self._loading.get(key, 0) + 1
        try:
            values = await load(keys)
        finally:
            stale = {key for key in keys if key in self._stale}
            for key in keys:
                remaining = self._loading.pop(key) - 1
                if remaining:
                    self._loading[key] = remaining
                else:
                    self._stale.discard(key)
        for key, value in values.items():
            if key not in stale:
                self._items[key] = value
        while len(self._items) > self._size:
            self._items.popitem(last=False)
        self._entries.value = len(self._items)
        return values

    def clear(self) -> None:
        """Forget everything (changes may have been missed); loads in flight are not kept."""
        self._items.clear()
        self._entries.value = 0
        self._stale.update(self._loading)

    def invalidate(self, key: K) -> None:
        if self._items.pop(key, None) is not None:
            self._entries.value = len(self._items)
        if key in self._loading:
            self._stale.add(key)
