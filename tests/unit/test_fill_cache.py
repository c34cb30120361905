"""FillCache never keeps a value loaded while a change to it committed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from homeserver.services.fill_cache import FillCache


async def test_a_load_raced_by_an_invalidation_is_returned_but_not_kept() -> None:
    cache: FillCache[str, int] = FillCache("memberships", 10)
    started, release = asyncio.Event(), asyncio.Event()

    async def slow_load() -> int:
        started.set()
        await release.wait()
        return 1  # read before the change below

    task = asyncio.create_task(cache.get_or_load("k", slow_load))
    await started.wait()
    cache.invalidate("k")  # the change commits while the load is in flight
    release.set()
    assert await task == 1
    assert cache.peek("k") is None

    async def fresh() -> int:
        return 2

    assert await cache.get_or_load("k", fresh) == 2
    assert cache.peek("k") == 2


async def test_load_many_keeps_the_untouched_keys_and_the_cache_is_bounded() -> None:
    cache: FillCache[str, int] = FillCache("memberships", 2)

    async def load(keys: Sequence[str]) -> dict[str, int]:
        cache.invalidate("b")
        return {k: len(k) for k in keys}

    assert await cache.load_many(["a", "b"], load) == {"a": 1, "b": 1}
    assert cache.peek("a") == 1 and cache.peek("b") is None
    await cache.load_many(["cc", "ddd"], load)
    assert cache.peek("a") is None and cache.peek("ddd") == 3


async def test_get_many_loads_only_the_keys_not_held_in_one_call() -> None:
    cache: FillCache[str, int] = FillCache("memberships", 10)
    calls: list[list[str]] = []

    async def load(keys: Sequence[str]) -> dict[str, int]:
        calls.append(list(keys))
        return {k: len(k) for k in keys}

    assert await cache.get_many(["a", "bb"], load) == {"a": 1, "bb": 2}
    assert await cache.get_many(["bb", "ccc", "dddd"], load) == {"bb": 2, "ccc": 3, "dddd": 4}
    assert calls == [["a", "bb"], ["ccc", "dddd"]]
    assert await cache.get_many(["a", "dddd"], load) == {"a": 1, "dddd": 4}
    assert len(calls) == 2
