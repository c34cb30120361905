"""A bounded in-memory cache of values loaded from the database, safe against racing changes.

Theory of operation. A value is loaded on a miss (`get_or_load`) and dropped by the code that
changes it (`invalidate`), after that change committed. A load is an await, so a change can
commit while one is in flight, after it read the old value: such a load is marked stale and its
result is returned to its caller but not kept. Only keys with a load in flight are tracked for
this, so the bookkeeping stays as small as the cache.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class FillCache(Generic[K, V]):
    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._loading: dict[K, int] = {}
        self._stale: set[K] = set()

    def peek(self, key: K) -> V | None:
        return self._items.get(key)

    async def get_or_load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        if key in self._items:
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
        if missing:
            found.update(await self.load_many(missing, load))
        return found

    async def load_many(
        self, keys: Sequence[K], load: Callable[[Sequence[K]], Awaitable[dict[K, V]]]
    ) -> dict[K, V]:
        """Load `keys` with one call (it must return a value for each) and keep those no
        change touched meanwhile."""
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
        return values

    def clear(self) -> None:
        """Forget everything (changes may have been missed); loads in flight are not kept."""
        self._items.clear()
        self._stale.update(self._loading)

    def invalidate(self, key: K) -> None:
        self._items.pop(key, None)
        if key in self._loading:
            self._stale.add(key)
