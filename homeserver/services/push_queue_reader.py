"""Reads many pushers' queues with one statement, for the push sender's per-pusher tasks.

Theory of operation. An event in a big room notifies most of its members at once, and every
one of their pushers' tasks then wants its queue read: a statement per pusher would cost the
database the room writer uses once per push. So a task calls `read` and waits; the requests
made while no read runs are answered together by the next statement, and those made while one
runs by the one after it. The positions the tasks delivered since their last read ride along
and are deleted by that same statement. A wave of pushes to many pushers thus costs about two
statements (the read that finds the rows, and the one that deletes them and finds the queues
empty), however many pushers it reaches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import partial

from storage import push_deliveries as queue_store
from storage.database import Database
from storage.push_deliveries import PusherKey, QueuedPush


class QueueReader:
    def __init__(self, db: Database, slots: asyncio.Semaphore, limit: int) -> None:
        self.db = db
        self.slots = slots  # the sender's share of the pool
        self.limit = limit  # rows read at once from one pusher's queue
        self._waiting: dict[PusherKey, asyncio.Future[list[QueuedPush]]] = {}
        self._delivered: list[int] = []  # handed over, not yet deleted
        self._task: asyncio.Task[None] | None = None

    async def read(self, key: PusherKey, delivered: Sequence[int]) -> list[QueuedPush]:
        """The pusher's oldest rows in queue order, once the `delivered` positions (handed
        over here, whatever happens to this read) are deleted."""
        self._delivered.extend(delivered)
        future = self._waiting.get(key)
        if future is None:
            future = self._waiting[key] = asyncio.get_running_loop().create_future()
        if self._task is None:
            self._task = asyncio.create_task(self._serve(), name="push queue reader")
        return await future

    async def stop(self) -> list[int]:
        """Stop reading; the positions handed over and not deleted yet."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        delivered, self._delivered = self._delivered, []
        return delivered

    async def _serve(self) -> None:
        try:
            while self._waiting:
                waiting, self._waiting = self._waiting, {}
                delivered, self._delivered = self._delivered, []
                read = partial(
                    queue_store.get_queued, keys=list(waiting), limit=self.limit,
                    delivered=delivered,
                )
                try:
                    async with self.slots:
                        found = await self.db.run(read, name="push_read")
                except Exception as e:
                    self._delivered[:0] = delivered  # the next read deletes them
                    for future in waiting.values():
                        if not future.done():
                            future.set_exception(e)
                    continue
                for key, future in waiting.items():
                    if not future.done():  # its task was cancelled meanwhile
                        future.set_result(found.get(key, []))
        finally:
            self._task = None
