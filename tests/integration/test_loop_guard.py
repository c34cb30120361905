"""The loop guard (tests/loop_guard.py) notices what it is for, and not what it must ignore:
a request whose handler blocks the server's loop is reported with where it blocked, whether it
sleeps or computes; a callback slowed only by another process taking its CPU is not."""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.helpers import MatrixApi
from tests.loop_guard import SAMPLE_INTERVAL_S, THRESHOLD_S, Allowed, Block, LoopGuard


async def run_on_loop(work: Callable[[], Any]) -> None:
    """`work` as one callback of the running loop, awaited until it has run."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.call_soon(lambda: done.set_result(work()))
    await done


def sleep_past_threshold() -> None:
    time.sleep(2 * THRESHOLD_S)


def sleep_just_past_threshold() -> None:
    """Ends within a sampling interval of the threshold, as most blocks just over it do."""
    time.sleep(THRESHOLD_S + SAMPLE_INTERVAL_S / 4)


def compute_for(cpu_s: float) -> None:
    """Busy work until this thread has used `cpu_s` of CPU time."""
    end = time.thread_time() + cpu_s
    while time.thread_time() < end:
        pass


async def test_a_request_whose_handler_blocks_is_reported_with_its_stack(
    homeserver: RunningServer, api: MatrixApi, loop_guard: LoopGuard,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user = await api.register("alice")
    profiles = homeserver.hs.accounts.profiles
    lookup = profiles.lookup_profile

    async def blocking_lookup(user_id: str) -> Any:
        sleep_past_threshold()
        return await lookup(user_id)

    monkeypatch.setattr(profiles, "lookup_profile", blocking_lookup)
    with loop_guard.collecting() as blocks:
        await api.ok("GET", f"profile/{user.user_id}", token=user.token)
    [block] = blocks
    assert block.blocked_s >= 2 * THRESHOLD_S * 0.9
    assert "task" in block.callback
    assert block.stack[-2:] == (
        f"{__name__}:test_a_request_whose_handler_blocks_is_reported_with_its_stack"
        ".<locals>.blocking_lookup",
        f"{__name__}:sleep_past_threshold",
    )


async def test_a_callback_computing_past_the_threshold_is_reported(loop_guard: LoopGuard) -> None:
    with loop_guard.collecting() as blocks:
        await run_on_loop(lambda: compute_for(2 * THRESHOLD_S))
    [block] = blocks
    assert f"{__name__}:compute_for" in block.stack


async def test_a_block_just_past_the_threshold_is_placed(loop_guard: LoopGuard) -> None:
    """Its stack is known, so an allowed place there is not reported as an unplaced block."""
    with loop_guard.collecting() as blocks:
        await run_on_loop(sleep_just_past_threshold)
    [block] = blocks
    assert f"{__name__}:sleep_just_past_threshold" in block.stack


async def test_a_short_callback_is_not_reported(loop_guard: LoopGuard) -> None:
    with loop_guard.collecting() as blocks:
        await run_on_loop(lambda: time.sleep(THRESHOLD_S / 4))
    assert blocks == []


@pytest.fixture
def slow_garbage_collections() -> Iterator[None]:
    """Every collection takes past the threshold, as a full one does on a big heap."""
    def slow(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            sleep_past_threshold()

    gc.callbacks.append(slow)
    yield
    gc.callbacks.remove(slow)


@pytest.mark.usefixtures("slow_garbage_collections")
async def test_a_garbage_collection_is_not_counted_against_the_callback_it_interrupts(
    loop_guard: LoopGuard,
) -> None:
    with loop_guard.collecting() as blocks:
        await run_on_loop(gc.collect)
    assert blocks == []


async def test_an_allowed_place_is_not_reported(
    loop_guard: LoopGuard, monkeypatch: pytest.MonkeyPatch
) -> None:
    allowed = Allowed(f"{__name__}:sleep_past_threshold", "this test allows it")
    monkeypatch.setattr(loop_guard, "allowed", (*loop_guard.allowed, allowed))
    with loop_guard.collecting() as blocks:
        await run_on_loop(sleep_past_threshold)
        await run_on_loop(lambda: compute_for(2 * THRESHOLD_S))
    assert [f"{__name__}:compute_for" in block.stack for block in blocks] == [True]


def gil_holder(seconds: float, holding: threading.Event) -> threading.Thread:
    """A thread that, once started, keeps the GIL for `seconds` in one C call (a builtin summing
    a range yields it only when it returns), `holding` set just before."""
    start = time.perf_counter()
    sum(range(1_000_000))
    steps = int(seconds / (time.perf_counter() - start) * 1_000_000)
    return threading.Thread(target=lambda: (holding.set(), sum(range(steps))))


async def test_a_callback_held_off_the_gil_by_another_thread_is_not_reported(
    loop_guard: LoopGuard,
) -> None:
    """Another thread's long C call holds up whatever callback needs the GIL meanwhile; the
    callback blocked nothing itself (the sampler, held off too, never sees it)."""
    holding = threading.Event()
    holder = gil_holder(3 * THRESHOLD_S, holding)
    walls: list[float] = []

    def held_off() -> None:
        start = time.perf_counter()
        holder.start()
        holding.wait()
        time.sleep(SAMPLE_INTERVAL_S)  # gives the GIL up to the holder, now in its sum
        walls.append(time.perf_counter() - start)

    with loop_guard.collecting() as blocks:
        await run_on_loop(held_off)
    holder.join()
    assert walls[0] > 2 * THRESHOLD_S  # by its time on the loop, the callback blocked it
    assert blocks == [], [str(b) for b in blocks]


@pytest.fixture
def one_cpu_shared_with_a_spinner() -> Iterator[None]:
    """This thread pinned to one CPU that a busy process pinned there too takes half of."""
    cpu = min(os.sched_getaffinity(0))
    before = os.sched_getaffinity(0)
    ready = multiprocessing.Event()
    spinner = multiprocessing.Process(target=spin, args=(cpu, ready), daemon=True)
    spinner.start()
    ready.wait()
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
        spinner.kill()
        spinner.join()


def spin(cpu: int, ready: Any) -> None:
    os.sched_setaffinity(0, {cpu})
    ready.set()
    while True:
        pass


@pytest.mark.usefixtures("one_cpu_shared_with_a_spinner")
async def test_a_callback_slowed_by_cpu_contention_alone_is_not_reported(
    loop_guard: LoopGuard,
) -> None:
    walls: list[float] = []

    def contended() -> None:
        start = time.perf_counter()
        compute_for(0.6 * THRESHOLD_S)
        walls.append(time.perf_counter() - start)

    with loop_guard.collecting() as blocks:
        await run_on_loop(contended)
    # The spinner took its share: by wall time alone the callback would count as blocking.
    assert walls[0] > THRESHOLD_S
    assert blocks == [], [str(b) for b in blocks]


def test_a_block_names_its_time_callback_and_stack() -> None:
    block = Block(0.25, 0.3, "task t running 'f'", ("a:outer", "b:inner"))
    assert str(block) == (
        "blocked the loop 250 ms (wall 300 ms) in task t running 'f'; at a:outer > b:inner"
    )
