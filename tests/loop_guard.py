"""A guard that fails a test when one callback blocks the event loop for more than 250 ms.

Every request, sync and federation transaction of a server shares one event loop: a callback
that hashes, compresses or waits on a file in it stalls them all. asyncio's debug mode reports
such callbacks, but it also wraps every coroutine and checks every call, which slows the whole
suite; this guard wraps only `Handle._run` (each callback, including each step of a task) and
costs a clock read and one small read of /proc per callback.

What counts is the time the loop's thread was *blocked*: the callback's wall time minus the time
the kernel kept the thread runnable but waiting for a CPU (schedstat's run-queue delay), minus
the time the garbage collector ran. A 2-core machine shared with other test runs makes wall time
lie; CPU time alone (`time.thread_time`) would not lie, but it misses a callback that sleeps or
waits on synchronous I/O, which is blocking too. Wall time minus the run-queue delay counts both
and not the contention. A full collection pauses whichever callback happens to allocate when it
starts, for as long as the whole heap takes to walk: its length says how big the test process's
heap has grown (hundreds of servers, hypothesis), not what the interrupted code does.

Why 250 ms and not 100: at 100 ms, two full runs of the suite on a 2-core VM each failed one
test on a block of 101-104 ms that the sampler could not place (a fixture's setup, a test's own
parsing); even with run-queue delay taken out, the time of a callback on a shared virtual
machine jitters by that much. The blocks this guard exists for are larger: formatting the
metrics page on the loop took 100-600 ms, parsing a forged 9 MB transaction 0.6-0.8 s.

A thread samples the loop thread's stack while a callback runs past half the threshold, so a
report says where the loop was stuck. The sampler needs the GIL too, which a callback that
sleeps or waits on I/O releases and one that computes yields every few milliseconds; so a
callback is seen at each interval, unless some thread held the GIL throughout. A block seen
fewer than MIN_SAMPLES times, during which the loop's thread was on a CPU for less than the
threshold, is therefore not reported: the callback waited for a GIL that it did not hold, that
another thread's long C call held (a C builtin yields the GIL only when it returns), or the
kernel stalled the thread (a page fault); not the callback's doing, and a guard that times
callbacks cannot say whose. A fresh-clone run failed a test on such a block: 606 ms "in
`_SelectorSocketTransport._read_ready`", unsampled, in a test of small requests and scrapes.

Places known to block, each with its reason, are in ALLOWED: a report whose sampled stack
passes through one of them is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

THRESHOLD_S = 0.250
SAMPLE_INTERVAL_S = 0.020
# A callback past the threshold that sleeps is seen ~6 times (from half the threshold on).
MIN_SAMPLES = 3
# A report shows the stack's frames in these packages (not the guard's own), then the innermost.
OWN_PACKAGES = ("homeserver.", "federation.", "storage.", "tests.")
INNERMOST_SHOWN = 3


@dataclass(frozen=True)
class Allowed:
    """A function (`module:qualname`) that may block the loop, and why that is acceptable."""

    where: str
    reason: str


ALLOWED: tuple[Allowed, ...] = (
    Allowed(
        "tests.bad_input:collect",
        "the test draws its generated inputs with hypothesis before sending any: test-side work"
        " that no request is waiting on",
    ),
    Allowed(
        "tests.helpers:MatrixApi.request",
        "the test's own client encoding a generated body or building its URL (yarl, JSON of"
        " deep or huge values) before sending: the server's handlers run in tasks of their own,"
        " so nothing inside this call is server code",
    ),
    Allowed(
        "tests.helpers:_load_yaml",
        "the test parses a file of the Matrix spec to validate a response against it, once per"
        " file and session (cached)",
    ),
    Allowed(
        "tests.spec_operations:operations",
        "the test parses the spec's Client-Server API files for its route list, once per"
        " session (cached)",
    ),
    Allowed(
        "tests.integration.test_federation_sender:sample",
        "the test reads one sample from the process-wide metrics registry, which walks every"
        " label set of every server the session started (a production server has one)",
    ),
)


@dataclass(frozen=True)
class Block:
    """One callback that held the loop's thread for longer than the threshold."""

    blocked_s: float
    wall_s: float
    callback: str
    stack: tuple[str, ...]  # `module:qualname`, outermost first; empty when never sampled

    def __str__(self) -> str:
        inner = len(self.stack) - INNERMOST_SHOWN
        shown = [
            frame for i, frame in enumerate(self.stack)
            if i >= inner or (frame.startswith(OWN_PACKAGES) and not frame.startswith(__name__))
        ]
        where = " > ".join(shown) or "(stack not sampled)"
        return (
            f"blocked the loop {self.blocked_s * 1000:.0f} ms (wall {self.wall_s * 1000:.0f} ms) "
            f"in {self.callback}; at {where}"
        )


def schedstat_reader() -> Callable[[], tuple[float, float]] | None:
    """A reader of the calling thread's total time on a CPU and total run-queue delay, in
    seconds (Linux schedstat), or None where the kernel does not report them."""
    path = f"/proc/self/task/{threading.get_native_id()}/schedstat"
    try:
        fd = os.open(path, os.O_RDONLY)
        os.pread(fd, 64, 0).split()[1]
    except (OSError, IndexError):
        return None

    def read() -> tuple[float, float]:
        on_cpu, run_queue = os.pread(fd, 64, 0).split()[:2]
        return int(on_cpu) / 1e9, int(run_queue) / 1e9

    return read


def describe(callback: Any) -> str:
    """The task's coroutine for a task step, else the callback itself."""
    task = getattr(callback, "__self__", None)
    if isinstance(task, asyncio.Task):
        coro = task.get_coro()
        return f"task {task.get_name()} running {getattr(coro, '__qualname__', coro)!r}"
    return repr(callback)


def stack_of(frame: FrameType | None) -> tuple[str, ...]:
    names: list[str] = []
    while frame is not None:
        names.append(f"{frame.f_globals.get('__name__', '?')}:{frame.f_code.co_qualname}")
        frame = frame.f_back
    return tuple(reversed(names))


@dataclass
class LoopGuard:
    """Times every callback run on one thread; collects the blocks not in `allowed`."""

    allowed: tuple[Allowed, ...] = ALLOWED
    threshold_s: float = THRESHOLD_S
    blocks: list[Block] = field(default_factory=list)
    _thread_id: int = 0
    _schedstat: Callable[[], tuple[float, float]] | None = None
    # (start, callback) of the callback running now, for the sampler; None between callbacks.
    _running: tuple[float, Any] | None = None
    # The sampler's newest stack, with the `_running` it was taken during and how many times
    # that callback was sampled.
    _sampled: tuple[tuple[float, Any] | None, tuple[str, ...], int] = (None, (), 0)
    _stop: threading.Event = field(default_factory=threading.Event)
    _gc_s: float = 0.0  # total time the garbage collector ran, in any thread (it holds the GIL)
    _gc_started: float = 0.0

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self._gc_s += time.perf_counter() - self._gc_started

    def install(self) -> Callable[[], None]:
        """Start guarding the calling thread's callbacks; returns the uninstaller."""
        self._thread_id = threading.get_ident()
        self._schedstat = schedstat_reader()
        original = asyncio.events.Handle._run
        guard = self

        def _run(handle: asyncio.events.Handle) -> None:
            if threading.get_ident() == guard._thread_id:
                guard._timed(handle, original)
            else:
                original(handle)

        sampler = threading.Thread(target=self._sample, name="loop-guard", daemon=True)
        asyncio.events.Handle._run = _run  # type: ignore[method-assign,assignment]
        gc.callbacks.append(self._on_gc)
        sampler.start()

        def uninstall() -> None:
            asyncio.events.Handle._run = original  # type: ignore[method-assign]
            gc.callbacks.remove(self._on_gc)
            self._stop.set()
            sampler.join()

        return uninstall

    def _timed(
        self, handle: asyncio.events.Handle, run: Callable[[asyncio.events.Handle], None]
    ) -> None:
        schedstat = self._schedstat
        before = schedstat() if schedstat is not None else (0.0, 0.0)
        collecting = self._gc_s
        start = time.perf_counter()
        running = self._running = (start, handle._callback)  # type: ignore[attr-defined]
        try:
            run(handle)
        finally:
            self._running = None
            sampled_during, stack, samples = self._sampled
            wall = time.perf_counter() - start
            if wall > self.threshold_s:
                after = schedstat() if schedstat is not None else (wall, 0.0)
                collected = self._gc_s - collecting
                blocked = wall - (after[1] - before[1]) - collected
                if sampled_during is not running:
                    stack, samples = (), 0
                ran = after[0] - before[0] - collected
                seen = samples >= MIN_SAMPLES or ran > self.threshold_s
                if blocked > self.threshold_s and seen:
                    self._report(Block(
                        blocked, wall, describe(handle._callback),  # type: ignore[attr-defined]
                        stack,
                    ))

    def _sample(self) -> None:
        """Take the loop thread's stack, again at each interval, while a callback runs past half
        the threshold: the newest sample says where it was at most an interval before it ended.
        Sampling only past the threshold missed every block that ended less than an interval
        beyond it (a 252 ms block in a test's own hypothesis draws was reported unplaced)."""
        while not self._stop.wait(SAMPLE_INTERVAL_S):
            running = self._running
            if running is not None and time.perf_counter() - running[0] > self.threshold_s / 2:
                previous, _, samples = self._sampled
                stack = stack_of(sys._current_frames().get(self._thread_id))
                self._sampled = (running, stack, samples + 1 if previous is running else 1)

    def _report(self, block: Block) -> None:
        if not any(allowed.where in block.stack for allowed in self.allowed):
            self.blocks.append(block)

    @contextlib.contextmanager
    def collecting(self) -> Iterator[list[Block]]:
        """The blocks reported inside the block (and only there), kept out of `blocks`."""
        outer, self.blocks = self.blocks, []
        try:
            yield self.blocks
        finally:
            self.blocks = outer
