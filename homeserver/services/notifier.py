"""Wakes long-polling /sync requests when something they can see happens.

Theory of operation: a /sync that may have to wait first registers a future under its user ID
(`listen`), then reads the streams, then waits on the future. Registering before reading means a
change that lands between the read and the wait still wakes it. Writers call `notify_users` with
the users who can see the change (the room engine passes the room's joined members plus the
target of a membership event), so a send wakes only those waiters. A spurious wake-up costs one
empty read; a missed one would cost a whole timeout, so writers err on the side of waking.

Other processes sharing the database learn of the same wake-ups through `on_notify`: every
writer calls `notify_users` only after its write committed, so this is the one place a
wake-up passes through, and `app.py` plugs replication in here.

A waiter's future completes with the monotonic time of its wake-up, so that the long-poll it
woke can tell, once its answer is ready, how long that took (`answered_after_wake`).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from homeserver import metrics


class Notifier:
    def __init__(self) -> None:
        self._waiters: defaultdict[str, set[asyncio.Future[float]]] = defaultdict(set)
        # Told the users of every `notify_users` call, after the local wake-ups.
        self.on_notify: list[Callable[[list[str]], None]] = []

    def notify_users(self, user_ids: Iterable[str]) -> None:
        if not self.on_notify:
            self._wake(user_ids)
            return
        users = list(user_ids)
        self._wake(users)
        for hook in self.on_notify:
            hook(users)

    def _wake(self, user_ids: Iterable[str]) -> None:
        now = time.monotonic()
        for user_id in user_ids:
            for fut in self._waiters.pop(user_id, ()):
                if not fut.done():
                    fut.set_result(now)

    def notify_all(self) -> None:
        """Wake every waiting /sync (after missing wake-ups: they read and wait again)."""
        self.notify_users(list(self._waiters))

    @contextmanager
    def listen(self, user_id: str) -> Iterator[asyncio.Future[float]]:
        """A future that completes, with the time, the next time `user_id` is notified."""
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiters[user_id].add(fut)
        metrics.SYNC_LONG_POLLS.inc()
        try:
            yield fut
        finally:
            metrics.SYNC_LONG_POLLS.dec()
            waiters = self._waiters.get(user_id)
            if waiters is not None:
                waiters.discard(fut)
                if not waiters:
                    del self._waiters[user_id]


def answered_after_wake(woken_at: float | None) -> None:
    """A long-poll has its answer with news, `woken_at` (None: it never waited) after the
    wake-up that brought it."""
    if woken_at is not None:
        metrics.SYNC_WAKEUP_SECONDS.observe(time.monotonic() - woken_at)


async def wait_for_wake(fut: asyncio.Future[float], timeout_s: float) -> bool:
    """True if the future fired within the timeout."""
    if timeout_s <= 0:
        return fut.done()
    try:
        await asyncio.wait_for(asyncio.shield(fut), timeout_s)
        return True
    except TimeoutError:
        return False
