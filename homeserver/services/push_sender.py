"""The push sender: delivers the durable per-pusher queue to push gateways.

Theory of operation. The room engine's transaction queues one `push_deliveries` row per
notification and http pusher of the notified user (`storage/push_deliveries.py`), so a push
commits with its event; a read receipt queues a badge-only row. After the commit the pushers
are woken: each pusher with work has one task, which reads its oldest rows and POSTs them one
at a time (the gateway API carries one notification a request), so its gateway sees them in
queue order. A row is deleted once the gateway answered 200; should the process die between
the answer and the deletion, that one notification is sent again after the restart (the spec
tells gateways to deduplicate by `event_id`). On a failure the *same* row is retried after an
exponential backoff (`protocol/backoff.py`, 1 s doubling to 5 minutes) whose state is stored
on the pusher, so a restart resumes where it stopped. A row leaves the queue undelivered only
when the gateway refused it for good (400 or 413, which no retry changes), when it has been
failing for a day (`DELIVERY_EXPIRY_MS`, after which a notification is news to nobody), or
when its pusher is deleted: by its owner, or because the gateway listed its pushkey in
`rejected`.

Counts are read when a row is sent, not when it was queued: a phone coming back after an
outage shows the badge as it is now. A badge row is sent only when the count is lower than the
last one this process sent to that pusher (or none was sent yet).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

import asyncpg

from homeserver import metrics
from homeserver.protocol import push_gateway
from homeserver.protocol.backoff import PRODUCTION_BACKOFF, Backoff
from homeserver.protocol.identifiers import server_name_of
from homeserver.protocol.push_gateway import Device, RoomDetails
from homeserver.services.checked_resolver import AddressRefused
from homeserver.services.clock import Clock
from homeserver.services.push_gateway_client import GatewayFailed, PushGatewayClient
from homeserver.services.rooms.view import RoomView
from homeserver.services.unread_counts import UnreadCounts
from storage import push as push_store
from storage import push_deliveries as queue_store
from storage import state as state_store
from storage.database import Database
from storage.push_deliveries import HTTP, PusherKey, PusherState, QueuedPush

log = logging.getLogger(__name__)

BATCH = 50  # rows read at once from one pusher's queue
DELIVERY_EXPIRY_MS = 24 * 3600 * 1000
# Answers that retrying cannot change: the gateway finds the request malformed or too large.
_HOPELESS = frozenset({400, 413})
_NO_BOUND = 2**62  # counts include every committed notification


@dataclass(slots=True)
class _Pusher:
    """What the sender holds in memory for one pusher."""

    key: PusherKey
    failures: int = 0
    retry_at: int | None = None  # ms; None while healthy
    pending: bool = False  # rows were queued since its task last read the queue
    task: asyncio.Task[None] | None = None
    gone: bool = False  # deleted (rejected by its gateway): its task stops


class PushSender:
    """Sends every queued push to its pusher's gateway, in order, one request in flight per
    pusher."""

    def __init__(
        self, db: Database, client: PushGatewayClient, rooms: RoomView, unread: UnreadCounts,
        server_name: str, clock: Clock, backoff: Backoff = PRODUCTION_BACKOFF,
    ) -> None:
        self.db = db
        self.client = client
        self.rooms = rooms
        self.unread = unread
        self.server_name = server_name
        self.clock = clock
        self.backoff = backoff
        self._pushers: dict[PusherKey, _Pusher] = {}
        # The last unread count sent to each pusher, so that a badge goes out only when the
        # count dropped.
        self._last_unread: dict[PusherKey, int] = {}
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._stopped = True

    # ---- what wakes it ----------------------------------------------------------------------

    def queued(self, keys: Iterable[PusherKey]) -> None:
        """Rows were committed for these pushers."""
        for key in set(keys):
            self._wake(key)

    def read_moved(self, user_id: str, room_id: str) -> None:
        """A receipt moved where a user has read up to (a `ReceiptsService.on_read` listener):
        queue a badge update for a local user's pushers."""
        if self._stopped or server_name_of(user_id) != self.server_name:
            return
        task = asyncio.create_task(self._queue_badges(user_id), name="push badges")
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def _queue_badges(self, user_id: str) -> None:
        try:
            keys = await self.db.transaction(
                lambda conn: queue_store.queue_badges(conn, user_id), name="push_badges"
            )
        except Exception:
            log.exception("queueing badge updates for %s failed", user_id)
            return
        self.queued(keys)

    # ---- start, stop, gauges ------------------------------------------------------------------

    async def start(self) -> None:
        """Resume every pusher with queued rows, each no earlier than its stored retry time."""
        self._stopped = False
        states = await self.db.run(queue_store.get_queued_pushers, name="push_resume")
        for key, state in states.items():
            pusher = self._pusher(key)
            pusher.failures, pusher.retry_at = state.failures, state.retry_at
            self._wake(key)
        if states:
            log.info("push sender resumed %d pushers", len(states))

    async def stop(self) -> None:
        """Cancel every task; undelivered rows stay queued for the next start."""
        self._stopped = True
        tasks = [p.task for p in self._pushers.values() if p.task is not None]
        tasks += list(self._side_tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.client.close()

    async def refresh_gauges(self) -> None:
        depth, oldest = await self.db.run(queue_store.get_queue_stats, name="push_gauges")
        metrics.PUSH_QUEUE_DEPTH.labels(HTTP).set(depth)
        age_s = 0.0 if oldest is None else max(0, self.clock.now_ms() - oldest) / 1000
        metrics.PUSH_QUEUE_OLDEST_AGE_SECONDS.labels(HTTP).set(age_s)

    # ---- one pusher's task ----------------------------------------------------------------

    def _pusher(self, key: PusherKey) -> _Pusher:
        pusher = self._pushers.get(key)
        if pusher is None:
            pusher = self._pushers[key] = _Pusher(key)
        return pusher

    def _wake(self, key: PusherKey) -> None:
        if self._stopped:
            return  # the rows are durable; the next start sends them
        pusher = self._pusher(key)
        pusher.pending = True
        if pusher.task is None:
            pusher.task = asyncio.create_task(self._run(pusher), name="push sender")

    async def _run(self, pusher: _Pusher) -> None:
        """Send rows until the queue is empty; then the task ends (a wake starts another)."""
        try:
            while not pusher.gone:
                await self._wait_until_due(pusher)
                pusher.pending = False
                try:
                    rows = await self.db.run(
                        lambda conn: queue_store.get_queued(conn, pusher.key, BATCH),
                        name="push_read",
                    )
                    if not rows:
                        if pusher.pending:
                            continue  # queued while we read: look again
                        return
                    for row in rows:
                        await self._deliver(pusher, row)
                        if pusher.gone:
                            return
                except Exception:
                    # The database failed us (the gateway's failures are handled in _deliver):
                    # back off as for a failed delivery rather than lose the task.
                    log.exception("push sender for %s failed", pusher.key)
                    await self._failed(pusher)
        finally:
            pusher.task = None
            if pusher.gone or (pusher.failures == 0 and not pusher.pending):
                self._pushers.pop(pusher.key, None)

    async def _wait_until_due(self, pusher: _Pusher) -> None:
        if pusher.retry_at is not None:
            delay = (pusher.retry_at - self.clock.now_ms()) / 1000
            if delay > 0:
                await asyncio.sleep(delay)

    async def _deliver(self, pusher: _Pusher, row: QueuedPush) -> None:
        """Send one row until its gateway takes it (or it is dropped)."""
        url = row.pusher_data.get("url")
        retry = False
        while True:
            body = await self.db.run(
                partial(self._body, key=pusher.key, row=row, retry=retry), name="push"
            )
            if body is None or not isinstance(url, str):
                await self._forget(pusher, row)  # an unchanged badge, a vanished event
                return
            try:
                answer = await self.client.notify(url, body)
            except (AddressRefused, GatewayFailed) as e:
                metrics.PUSH_FAILED.labels(HTTP).inc()
                status = e.status if isinstance(e, GatewayFailed) else None
                if status in _HOPELESS or self._expired(row):
                    log.warning("dropping a push to %s for good: %s", pusher.key, e)
                    await self._forget(pusher, row)
                    return
                await self._failed(pusher)
                log.warning(
                    "push to %s failed (%s); retrying in %.1f s", pusher.key, e,
                    self.backoff.delay_s(pusher.failures),
                )
                await self._wait_until_due(pusher)
                retry = True
                continue
            metrics.PUSH_SENT.labels(HTTP).inc()
            if pusher.key.pushkey in push_gateway.rejected_pushkeys(answer):
                await self._rejected(pusher)
                return
            await self._forget(pusher, row)
            self._last_unread[pusher.key] = body["notification"]["counts"]["unread"]
            return

    def _expired(self, row: QueuedPush) -> bool:
        return self.clock.now_ms() - row.enqueued_ts >= DELIVERY_EXPIRY_MS

    async def _body(
        self, conn: asyncpg.Connection, key: PusherKey, row: QueuedPush, retry: bool
    ) -> dict[str, Any] | None:
        """The request for a row; None when there is nothing to send. A retry first checks
        that the row is still queued: its pusher may have been deleted during the backoff."""
        if retry and not await queue_store.is_queued(conn, row.position):
            return None
        device = Device(key.app_id, key.pushkey, row.pushkey_ts, row.pusher_data)
        unread = await self._unread(conn, key.user_id)
        if row.event_id is None or row.room_id is None:
            last = self._last_unread.get(key)
            if last is not None and unread >= last:
                return None
            return push_gateway.badge_notification(device, unread)
        pdu = (await self.rooms.get_pdus(conn, [row.event_id])).get(row.event_id)
        if pdu is None:
            return None
        details = RoomDetails()
        if device.data.get("format") != push_gateway.EVENT_ID_ONLY:
            details = await self._room_details(conn, row.room_id, pdu.get("sender"))
        return push_gateway.event_notification(
            pdu, row.event_id, row.room_id, key.user_id, row.actions, device, unread, details
        )

    async def _unread(self, conn: asyncpg.Connection, user_id: str) -> int:
        """The user's notifications after their read receipts, over every joined room."""
        memberships = await self.rooms.memberships(conn, user_id)
        joined = [r for r, m in memberships.items() if m.membership == "join"]
        counts = await self.unread.get(conn, user_id, joined, _NO_BOUND)
        return sum(notifications for notifications, _ in counts.values())

    async def _room_details(
        self, conn: asyncpg.Connection, room_id: str, sender: Any
    ) -> RoomDetails:
        """The room's name and canonical alias and the sender's display name, as they are now."""
        keys = [("m.room.name", ""), ("m.room.canonical_alias", "")]
        if isinstance(sender, str):
            keys.append(("m.room.member", sender))
        state = await state_store.get_current_state_for_keys(conn, room_id, keys)
        pdus = await self.rooms.get_pdus(conn, list(state.values()))
        content = {key[0]: pdus.get(e, {}).get("content", {}) for key, e in state.items()}

        def text(event_type: str, name: str) -> str | None:
            value = content.get(event_type, {}).get(name)
            return value if isinstance(value, str) and value else None

        return RoomDetails(
            text("m.room.name", "name"), text("m.room.canonical_alias", "alias"),
            text("m.room.member", "displayname"),
        )

    async def _forget(self, pusher: _Pusher, row: QueuedPush) -> None:
        """The row is done with; a pusher that was failing is healthy again."""
        healthy = PusherState(0, None)

        async def record(conn: asyncpg.Connection) -> None:
            await queue_store.delete_queued(conn, row.position)
            if pusher.failures:
                await queue_store.set_pusher_state(conn, pusher.key, healthy)

        await self.db.transaction(record, name="push_delivered")
        pusher.failures, pusher.retry_at = 0, None

    async def _rejected(self, pusher: _Pusher) -> None:
        """The gateway will never deliver to this pushkey: the pusher goes, with its queue."""
        key = pusher.key
        log.info("push gateway rejected the pushkey of %s: deleting the pusher", key)
        metrics.PUSH_REJECTED.labels(HTTP).inc()
        await self.db.transaction(
            lambda conn: push_store.delete_pusher(conn, key.user_id, key.app_id, key.pushkey),
            name="push_rejected",
        )
        pusher.gone = True
        self._last_unread.pop(key, None)

    async def _failed(self, pusher: _Pusher) -> None:
        """One more consecutive failure: the next attempt waits longer, also after a restart."""
        pusher.failures += 1
        pusher.retry_at = self.backoff.retry_at_ms(pusher.failures, self.clock.now_ms())
        state = PusherState(pusher.failures, pusher.retry_at)
        try:
            await self.db.transaction(
                lambda conn: queue_store.set_pusher_state(conn, pusher.key, state),
                name="push_backoff",
            )
        except Exception:
            log.exception("storing the backoff of %s failed", pusher.key)
