"""Reads many pushers' queues with one statement, for the push sender's per-pusher tasks.

Theory of operation. An event in a big room notifies most of its members at once, and every
one of their pushers' tasks then wants its queue read: a statement per pusher would cost the
database the room writer uses once per push. So a task calls `read` and waits; the requests
made while no read runs are answered together by the next statement, and those made while one
runs by the one after it. The positions the tasks delivered since their last read ride along
and are deleted by that same statement; a task that found its whole queue sent hands its
positions over without reading again (`hand_over`), and they go with the next read or, within
`DELETE_DELAY_S`, with one deletion for all that gathered meanwhile. A wave of pushes to many
pushers thus costs about two statements (the read that finds the rows, and the deletion),
however many pushers it reaches. Deferring a deletion widens, by as much, the window in which
a crash makes a notification go out twice. On the same connection, right after a read, the
sender loads what the bodies of all the rows found will need (`prepare`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

import asyncpg

from storage import push_deliveries as queue_store
from storage.database import Database
from storage.push_deliveries import PusherKey, QueuedPush

log = logging.getLogger(__name__)
DELETE_DELAY_S = 0.05
# Loads, on the read's connection, what the bodies of the rows read will need.
Prepare = Callable[[asyncpg.Connection, list[QueuedPush]], Awaitable[None]]


class QueueReader:
    def __init__(
        self, db: Database, slots: asyncio.Semaphore, limit: int, prepare: Prepare
    ) -> None:
        self.db = db
        self.slots = slots  # the sender's share of the pool
        self.limit = limit  # rows read at once from one pusher's queue
        self.prepare = prepare
        self._waiting: dict[PusherKey, asyncio.Future[list[QueuedPush]]] = {}
        self._delivered: list[int] = []  # handed over, not yet deleted
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    async def read(self, key: PusherKey, delivered: Sequence[int]) -> list[QueuedPush]:
        """The pusher's oldest rows in queue order, once the `delivered` positions (handed
        over here, whatever happens to this read) are deleted."""
        self._delivered.extend(delivered)
        future = self._waiting.get(key)
        if future is None:
            future = self._waiting[key] = asyncio.get_running_loop().create_future()
        self._start()
        return await future

    def hand_over(self, delivered: Sequence[int]) -> None:
        """Delete these positions soon, with other reads or deletions."""
        if not delivered:
            return
        self._delivered.extend(delivered)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(DELETE_DELAY_S, self._due)

    def _due(self) -> None:
        self._timer = None
        self._start()

    def _start(self) -> None:
        if self._task is None and (self._waiting or self._delivered):
            self._task = asyncio.create_task(self._serve(), name="push queue reader")

    async def stop(self) -> list[int]:
        """Stop reading; the positions handed over and not deleted yet."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        delivered, self._delivered = self._delivered, []
        return delivered

    async def _serve(self) -> None:
        """Answer the waiting reads (or, on the timer, delete) until nobody waits. Positions
        handed over meanwhile wait for the timer, unless a read takes them first."""
        failed = False
        try:
            while True:
                waiting, self._waiting = self._waiting, {}
                delivered, self._delivered = self._delivered, []
                try:
                    found = await self._run(list(waiting), delivered)
                except Exception as e:
                    # The positions wait for the next read, or the next hand-over's timer.
                    self._delivered[:0] = delivered
                    failed = True
                    log.warning("reading push queues failed: %s", e)
                    for future in waiting.values():
                        if not future.done():
                            future.set_exception(e)
                else:
                    failed = False
                    for key, future in waiting.items():
                        if not future.done():  # its task was cancelled meanwhile
                            future.set_result(found.get(key, []))
                if not self._waiting:
                    break
        finally:
            self._task = None
            if self._delivered and self._timer is None and not failed:
                self._timer = asyncio.get_running_loop().call_later(DELETE_DELAY_S, self._due)

    async def _run(
        self, keys: list[PusherKey], delivered: list[int]
    ) -> dict[PusherKey, list[QueuedPush]]:
        """Read these queues, deleting `delivered` with the same statement (or just delete)."""
        async with self.slots:
            if not keys:
                await self.db.run(
                    partial(queue_store.delete_queued, positions=delivered),
                    name="push_delivered",
                )
                return {}
            return await self.db.run(partial(self._read, keys=keys, delivered=delivered),
                                     name="push_read")

    async def _read(
        self, conn: asyncpg.Connection, keys: list[PusherKey], delivered: list[int]
    ) -> dict[PusherKey, list[QueuedPush]]:
        found = await queue_store.get_queued(conn, keys, self.limit, delivered)
        try:
            await self.prepare(conn, [row for rows in found.values() for row in rows])
        except Exception as e:  # the rows go out anyway: each body loads what it lacks
            log.warning("preparing %d pushers' rows failed: %s", len(found), e)
        return found
