"""FairSlots: the per-key cap, round-robin hand-over between keys, and cancellation."""

from __future__ import annotations

import asyncio

import pytest

from homeserver.errors import MatrixError
from homeserver.services.fair_slots import FairSlots


async def test_a_key_over_its_cap_is_refused_at_once() -> None:
    slots = FairSlots(4, per_key=2, retry_after_ms=500)
    release = asyncio.Event()

    async def hold(key: str) -> None:
        async with slots.slot(key):
            await release.wait()

    held = [asyncio.create_task(hold("a")) for _ in range(2)]
    await asyncio.sleep(0)  # let both take their slots
    with pytest.raises(MatrixError) as refused:
        async with slots.slot("a"):
            pass
    assert (refused.value.status, refused.value.extra) == (429, {"retry_after_ms": 500})
    async with slots.slot("b"):  # another key is not refused
        pass
    release.set()
    await asyncio.gather(*held)
    async with slots.slot("a"):  # the cap counts jobs, not history
        pass


async def test_freed_slots_go_round_robin_between_keys() -> None:
    slots = FairSlots(1, per_key=None, retry_after_ms=500)
    order: list[str] = []
    gate = asyncio.Event()

    async def job(key: str) -> None:
        async with slots.slot(key):
            order.append(key)
            await gate.wait()

    first = asyncio.create_task(job("flood"))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(job("flood")) for _ in range(5)]
    await asyncio.sleep(0)
    waiting.append(asyncio.create_task(job("victim")))
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(first, *waiting)
    # The victim came after five waiting flood jobs and is served second after the running one.
    assert order[:3] == ["flood", "flood", "victim"]


async def test_a_cancelled_waiter_passes_its_turn_on() -> None:
    slots = FairSlots(1, per_key=None, retry_after_ms=500)
    gate = asyncio.Event()
    served: list[str] = []

    async def job(key: str) -> None:
        async with slots.slot(key):
            served.append(key)
            await gate.wait()

    running = asyncio.create_task(job("a"))
    await asyncio.sleep(0)
    cancelled = asyncio.create_task(job("b"))
    later = asyncio.create_task(job("c"))
    await asyncio.sleep(0)
    cancelled.cancel()
    gate.set()
    await asyncio.gather(running, later)
    assert served == ["a", "c"]
    async with slots.slot("d"):  # and no slot leaked
        served.append("d")
