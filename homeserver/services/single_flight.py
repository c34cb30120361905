"""Single flight: concurrent requests for the same thing share one fetch of it.

Used where users make this server fetch something from outside (a URL's preview, another
server's media): the first request starts the fetch as a task of its own, later ones for the
same key wait on that task, and a requester who goes away does not cancel the fetch the
others wait for. The keys are what users name, so at most `limit` fetches run or wait at once;
past it a request is refused with 429 M_LIMIT_EXCEEDED.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from homeserver.errors import MatrixError

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")

log = logging.getLogger(__name__)


class SingleFlight(Generic[K, T]):
    def __init__(self, limit: int, what: str) -> None:
        self.limit = limit
        self.what = what  # named in the 429: "Too many <what> at once"
        self._tasks: dict[K, asyncio.Task[T]] = {}

    async def run(self, key: K, fetch: Callable[[], Awaitable[T]]) -> T:
        """The result of the fetch for `key` under way, or of `fetch()` started now."""
        task = self._tasks.get(key)
        if task is None:
            if len(self._tasks) >= self.limit:
                raise MatrixError(
                    429, "M_LIMIT_EXCEEDED", f"Too many {self.what} at once",
                    retry_after_ms=1000,
                )
            task = asyncio.ensure_future(fetch())
            self._tasks[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        # Shielded: one requester going away does not cancel the fetch others wait for.
        return await asyncio.shield(task)

    def cancel(self) -> None:
        """Stop every fetch (the service is closing)."""
        for task in self._tasks.values():
            task.cancel()

    def _forget(self, key: K, task: asyncio.Task[T]) -> None:
        self._tasks.pop(key, None)
        if not task.cancelled() and task.exception() is not None:
            # Retrieved here, so a fetch whose requesters all went away logs no warning.
            log.debug("fetching %s %r failed: %s", self.what, key, task.exception())
