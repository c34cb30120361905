"""A few worker slots shared fairly between keys (client addresses), each key capped.

Theory of operation. `slots` jobs run at a time. A key (a client address) may hold at most
`per_key` jobs, running or waiting; one more is refused at once with 429 M_LIMIT_EXCEEDED, so a
flood from one address costs it nothing but refusals. Waiting jobs queue per key, and a freed
slot goes to the key at the front of a round-robin rotation: a key that just got a slot moves
to the back. A newcomer therefore waits behind at most one job of every other waiting key,
never behind the whole backlog of a busy one.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from homeserver import metrics
from homeserver.errors import limit_exceeded


class FairSlots:
    def __init__(self, slots: int, per_key: int | None, retry_after_ms: int) -> None:
        """`per_key` None: no cap per key (rate limits switched off), fairness still holds."""
        self._free = slots
        self._per_key = per_key
        self._retry_after_ms = retry_after_ms
        self._held: dict[str, int] = {}  # key -> its jobs running or waiting
        # Keys with waiting jobs, in the order they are served next.
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()

    @asynccontextmanager
    async def slot(self, key: str) -> AsyncIterator[None]:
        """Hold one slot for the body of the `async with`, or raise 429 at once."""
        held = self._held.get(key, 0)
        if self._per_key is not None and held >= self._per_key:
            metrics.PASSWORD_CHECKS_REFUSED.inc()
            raise limit_exceeded(self._retry_after_ms)
        self._held[key] = held + 1
        try:
            await self._acquire(key)
            try:
                yield
            finally:
                self._release()
        finally:
            self._held[key] -= 1
            if not self._held[key]:
                del self._held[key]

    async def _acquire(self, key: str) -> None:
        if self._free and not self._waiting:
            self._free -= 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, deque()).append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release()  # handed a slot just as we were cancelled: pass it on
            else:
                self._forget(key, turn)
            raise

    def _forget(self, key: str, turn: asyncio.Future[None]) -> None:
        queue = self._waiting.get(key)
        if queue is not None and turn in queue:
            queue.remove(turn)
            if not queue:
                del self._waiting[key]

    def _release(self) -> None:
        """Hand the slot to the first waiter of the key whose turn it is, else free it."""
        while self._waiting:
            key, queue = next(iter(self._waiting.items()))
            turn = queue.popleft()
            if queue:
                self._waiting.move_to_end(key)
            else:
                del self._waiting[key]
            if not turn.done():
                turn.set_result(None)
                return
        self._free += 1
