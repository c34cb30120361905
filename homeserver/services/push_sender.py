"""The push sender: delivers the durable per-pusher queue to push gateways.

Theory of operation. The room engine's transaction queues one `push_deliveries` row per
notification and http pusher of the notified user (`storage/push_deliveries.py`), so a push
commits with its event; a read receipt queues a badge-only row. After the commit the pushers
are woken: each pusher with work has one task, which reads its oldest rows and POSTs them one
at a time (the gateway API carries one notification a request), so its gateway sees them in
queue order. The queues of many pushers are read together (`QueueReader`). A row is deleted
only after the gateway answered 200, and not at once: the positions delivered are deleted by
the next statement that reads queues, or by one statement for all that a short while gathered
(`QueueReader.hand_over`), or, when the pusher was failing or fails now, with its retry state:
a busy sender pays statements per wave of pushes, not per row. Should the process die between
the answer and the deletion, those notifications are sent again after the restart (the spec
tells gateways to deduplicate by `event_id`); a clean stop deletes them. On a failure the
*same* row is retried after an exponential backoff (`protocol/backoff.py`, 1 s doubling to 5
minutes) whose state is stored on the pusher, so a restart resumes where it stopped. A row
leaves the queue undelivered only when the gateway refused it for good (400 or 413, which no
retry changes), when it has been queued for a day (`DELIVERY_EXPIRY_MS`, after which a
notification is news to nobody: dropped without a request, so that the backlog of a gateway
down for days drains at database speed rather than one timeout per row), or when its pusher
is deleted: by its owner, or because the gateway listed its pushkey in `rejected`.

Counts are read when a row is sent, not when it was queued: a phone coming back after an outage
shows the badge as it is now. Everything a request needs is read from memory where the process
keeps it current (the event cache, the user's memberships and unread counts, the room's current
state), so a push in the steady state reads nothing from the database, nor takes a pool
connection (`Database.on_demand`). What memory lacks (in a push worker, which writes no events:
the events themselves and the rooms' current state) is loaded when the rows are read, for all
the rows of one read at once on the read's connection (`_prepare`): an event to a room of many
pushers is read once, not once per pusher (in the push worker that was a statement or two per
push). The room's names and the sender's display name are worked out once for all the pushers
an event goes to. A badge row is sent only when the count is lower than the last one this
process sent to that pusher (or none was sent yet).

With a push worker configured, the delivering sender runs there, and the main process's sender
only announces the rows it queued (`elsewhere`, `push_wakeups.py`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import asyncpg

from homeserver import metrics
from homeserver.protocol import push_gateway
from homeserver.protocol.backoff import PRODUCTION_BACKOFF, Backoff
from homeserver.protocol.identifiers import server_name_of
from homeserver.protocol.push_gateway import Device, RoomDetails
from homeserver.protocol.retention import expired
from homeserver.protocol.state_keys import CANONICAL_ALIAS, NAME, StateKey
from homeserver.services.checked_resolver import AddressRefused
from homeserver.services.clock import Clock
from homeserver.services.push_gateway_client import GatewayFailed, PushGatewayClient
from homeserver.services.push_queue_reader import QueueReader
from homeserver.services.pusher_owners import PusherOwners
from homeserver.services.rooms.current_state import CurrentStateCache, StateQuery
from homeserver.services.rooms.view import RoomView
from homeserver.services.unread_counts import UnreadCounts
from storage import push as push_store
from storage import push_deliveries as queue_store
from storage.database import Database
from storage.push_deliveries import HTTP, PusherKey, PusherState, QueuedPush

log = logging.getLogger(__name__)
T = TypeVar("T")
_Work = Callable[[asyncpg.Connection], Awaitable[T]]

BATCH = 50  # rows read at once from one pusher's queue
# The most pool connections the pushers' tasks hold at once: a burst of notifications to many
# pushers must not queue the room writer (and every request) behind it for a connection.
DB_CONNECTIONS = 4
DELIVERY_EXPIRY_MS = 24 * 3600 * 1000
# Room names and display names looked up for one event's pushes serve its other pushers for
# this long, for so many events. They are looked up when the event's rows are read from the
# queue, and on a busy machine a worker at a low priority may send them seconds later: the
# pushes of one event should not each look them up again then.
DETAILS_FRESH_MS = 10_000
DETAILS_KEPT = 1024
# Answers that retrying cannot change: the gateway finds the request malformed or too large.
_HOPELESS = frozenset({400, 413})
_NO_BOUND = 2**62  # counts include every committed notification
MEMBER = "m.room.member"
_Lookup = asyncio.Future[RoomDetails | None]  # details being looked up; None if that failed
_SENT, _FAILED = metrics.PUSH_SENT.child(HTTP), metrics.PUSH_FAILED.labels(HTTP)


@dataclass(slots=True)
class _Pusher:
    """What the sender holds in memory for one pusher."""

    key: PusherKey
    failures: int = 0
    retry_at: int | None = None  # ms; None while healthy
    pending: bool = False  # rows were queued since its task last read the queue
    # Positions its gateway took that are still in the table (deleted with the next read).
    delivered: list[int] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    gone: bool = False  # deleted (rejected by its gateway): its task stops


class PushSender:
    """Sends every queued push to its pusher's gateway, in order, one request in flight per
    pusher."""

    def __init__(
        self, db: Database, client: PushGatewayClient, rooms: RoomView, unread: UnreadCounts,
        current_state: CurrentStateCache, server_name: str, clock: Clock,
        backoff: Backoff = PRODUCTION_BACKOFF,
    ) -> None:
        self.db = db
        self.client = client
        self.rooms = rooms
        self.current_state = current_state
        self.unread = unread
        self.server_name = server_name
        self.clock = clock
        self.backoff = backoff
        self._pushers: dict[PusherKey, _Pusher] = {}
        # The last unread count sent to each pusher, so that a badge goes out only when the
        # count dropped.
        self._last_unread: dict[PusherKey, int] = {}
        # event -> (when, its details, or their lookup in flight)
        self._details: dict[str, tuple[int, RoomDetails | _Lookup]] = {}
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._db_slots = asyncio.Semaphore(DB_CONNECTIONS)
        self.reader = QueueReader(db, self._db_slots, BATCH, self._prepare)
        self._stopped = True
        # Who holds an http pusher: the room writer queues pushes for them only.
        self.owners = PusherOwners()
        # Set in a main process whose push worker delivers (`push_wakeups.py`): the pushers
        # that got rows are announced to it, and this process sends nothing.
        self.elsewhere: Callable[[list[PusherKey]], None] | None = None

    # ---- what wakes it ----------------------------------------------------------------------

    def queued(self, keys: Iterable[PusherKey]) -> None:
        """Rows were committed for these pushers."""
        if self.elsewhere is not None:
            if keys := sorted(set(keys)):
                self.elsewhere(keys)
            return
        for key in set(keys):
            self._wake(key)

    def read_moved(self, user_id: str, room_id: str) -> None:
        """A receipt moved where a user has read up to (a `ReceiptsService.on_read` listener):
        queue a badge update for a local user's pushers."""
        if self._stopped or server_name_of(user_id) != self.server_name:
            return
        self.spawn(self._queue_badges(user_id), "push badges")

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run `work` beside the pushers' tasks (`stop` cancels it)."""
        task = asyncio.create_task(work, name=name)
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
        """Resume delivery, unless another process delivers."""
        await self.owners.load(self.db)
        self._stopped = False
        if self.elsewhere is None:
            await self.resume()

    async def resume(self) -> None:
        """Wake every pusher with queued rows (a pusher not running yet no earlier than its
        stored retry time): at start, and when wake-ups may have been missed."""
        states = await self.db.run(queue_store.get_queued_pushers, name="push_resume")
        for key, state in states.items():
            if key not in self._pushers:
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
        delivered = await self.reader.stop()
        if delivered:
            try:
                await self.db.run(
                    partial(queue_store.delete_queued, positions=delivered),
                    name="push_delivered",
                )
            except Exception:  # they are sent again after the restart
                log.exception("deleting %d delivered pushes failed", len(delivered))
        await self.client.close()

    async def refresh_gauges(self) -> None:
        depth, oldest = await self.db.run(queue_store.get_queue_stats, name="push_gauges")
        metrics.PUSH_QUEUE_DEPTH.labels(HTTP).set(depth)
        age_s = 0.0 if oldest is None else max(0, self.clock.now_ms() - oldest) / 1000
        metrics.PUSH_QUEUE_OLDEST_AGE_SECONDS.labels(HTTP).set(age_s)

    # ---- one pusher's task ----------------------------------------------------------------

    async def _in_transaction(self, fn: _Work[T], name: str) -> T:
        """`fn` in one transaction on one of the sender's pool connections."""
        async with self._db_slots:
            return await self.db.transaction(fn, name=name)

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
                    delivered, pusher.delivered = pusher.delivered, []
                    rows = await self.reader.read(pusher.key, delivered)
                    if not rows:
                        if pusher.pending:
                            continue  # queued while we read: look again
                        return
                    for row in rows:
                        await self._deliver(pusher, row)
                        if pusher.gone:
                            return
                    if len(rows) < BATCH and not pusher.pending:
                        return  # that was the whole queue, and nothing came since
                except Exception:
                    # The database failed us (the gateway's failures are handled in _deliver):
                    # back off as for a failed delivery rather than lose the task.
                    log.exception("push sender for %s failed", pusher.key)
                    await self._failed(pusher)
        finally:
            pusher.task = None
            if not pusher.gone:  # (a deleted pusher's rows went with it)
                self.reader.hand_over(pusher.delivered)
                pusher.delivered = []
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
            if self._expired(row):
                log.info("dropping a push to %s queued more than a day ago", pusher.key)
                await self._forget(pusher, row)
                return
            async with self.db.on_demand(self._db_slots) as conn:  # (nearly always cached)
                body = await self._body(conn, pusher.key, row, retry)
            if body is None or not isinstance(url, str):
                await self._forget(pusher, row)  # an unchanged badge, a vanished event
                return
            try:
                answer = await self.client.notify(url, body)
            except (AddressRefused, GatewayFailed) as e:
                _FAILED.inc()
                status = e.status if isinstance(e, GatewayFailed) else None
                if status in _HOPELESS:
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
            _SENT.value += 1
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
        cutoff = await self.rooms.expired_before(conn, row.room_id)
        if expired(pdu["origin_server_ts"], "state_key" in pdu, cutoff):
            return None  # it outlived its room's retention while queued: served to no one
        details = RoomDetails()
        if device.data.get("format") != push_gateway.EVENT_ID_ONLY:
            details = await self._details_of(conn, row.event_id, row.room_id, pdu)
        return push_gateway.event_notification(
            pdu, row.event_id, row.room_id, key.user_id, row.actions, device, unread, details
        )

    async def _unread(self, conn: asyncpg.Connection, user_id: str) -> int:
        """The user's notifications after their read receipts, over every joined room."""
        memberships = await self.rooms.memberships(conn, user_id)
        joined = [r for r, m in memberships.items() if m.membership == "join"]
        counts = await self.unread.get(conn, user_id, joined, _NO_BOUND)
        return sum(notifications for notifications, _ in counts.values())

    async def _details_of(
        self, conn: asyncpg.Connection, event_id: str, room_id: str, pdu: dict[str, Any]
    ) -> RoomDetails:
        """`_room_details` for the event, worked out once for all the pushers it goes to
        within `DETAILS_FRESH_MS` (a message to a room of many pushers asks for the same):
        normally by `_prepare` when their rows were read, else here by the first pusher that
        asks, whose answer the others wait for rather than ask the database again."""
        known = self._details.get(event_id)
        if known is not None and self.clock.now_ms() - known[0] < DETAILS_FRESH_MS:
            if not isinstance(known[1], asyncio.Future):
                return known[1]
            found = await asyncio.shield(known[1])
            if found is not None:
                return found  # (None: that lookup failed; this one tries again)
        looking: asyncio.Future[RoomDetails | None] = asyncio.get_running_loop().create_future()
        self._remember_details(event_id, looking)
        details = None
        try:
            details = (await self._room_details(conn, {event_id: (room_id, pdu)}))[event_id]
        finally:
            looking.set_result(details)
            if details is not None:
                self._remember_details(event_id, details)
            elif self._details.get(event_id, (0, None))[1] is looking:
                del self._details[event_id]
        return details

    def _remember_details(self, event_id: str, details: RoomDetails | _Lookup) -> None:
        if len(self._details) >= DETAILS_KEPT and event_id not in self._details:
            self._details.clear()
        self._details[event_id] = (self.clock.now_ms(), details)

    async def _prepare(self, conn: asyncpg.Connection, rows: list[QueuedPush]) -> None:
        """What the bodies of the rows one queue read found need, loaded for all of them at
        once on the read's connection: their events (one statement for those not cached),
        and the room details of the events that go to a full-format pusher (one statement
        for the rooms' current state, one at most for the state events not cached). The
        pushes of an event in a room of many pushers are read together, one row per pusher:
        looked up pusher by pusher, they cost a statement or two each."""
        event_ids = list({r.event_id for r in rows if r.event_id is not None})
        if not event_ids:
            return
        pdus = await self.rooms.get_pdus(conn, event_ids)
        now = self.clock.now_ms()
        wanted: dict[str, tuple[str, dict[str, Any]]] = {}
        for r in rows:
            if r.event_id is None or r.room_id is None or r.event_id in wanted:
                continue
            pdu = pdus.get(r.event_id)
            known = self._details.get(r.event_id)
            if (pdu is not None and r.pusher_data.get("format") != push_gateway.EVENT_ID_ONLY
                    and (known is None or now - known[0] >= DETAILS_FRESH_MS)):
                wanted[r.event_id] = (r.room_id, pdu)
        if wanted:
            for event_id, details in (await self._room_details(conn, wanted)).items():
                self._remember_details(event_id, details)

    async def _room_details(
        self, conn: asyncpg.Connection, events: dict[str, tuple[str, dict[str, Any]]]
    ) -> dict[str, RoomDetails]:
        """event -> its room's name and canonical alias and its sender's display name, as
        they are now, for events given as event -> (room, PDU)."""
        senders: dict[str, set[StateKey]] = {}
        for room_id, pdu in events.values():
            keys = senders.setdefault(room_id, {NAME, CANONICAL_ALIAS})
            if isinstance(pdu.get("sender"), str):
                keys.add((MEMBER, pdu["sender"]))
        queries = {room_id: StateQuery(keys=frozenset(k)) for room_id, k in senders.items()}
        state = await self.current_state.get(conn, queries)
        pdus = await self.rooms.get_pdus(conn, [e.event_id for s in state.values() for e in s])
        content = {
            (room_id, e.type, e.state_key or ""): pdus.get(e.event_id, {}).get("content", {})
            for room_id, held in state.items() for e in held
        }

        def text(room_id: str, key: StateKey, name: str) -> str | None:
            value = content.get((room_id, *key), {}).get(name)
            return value if isinstance(value, str) and value else None

        out = {}
        for event_id, (room_id, pdu) in events.items():
            sender = pdu.get("sender")
            out[event_id] = RoomDetails(
                text(room_id, NAME, "name"), text(room_id, CANONICAL_ALIAS, "alias"),
                text(room_id, (MEMBER, sender), "displayname")
                if isinstance(sender, str) else None,
            )
        return out

    async def _forget(self, pusher: _Pusher, row: QueuedPush) -> None:
        """The row is done with; a pusher that was failing is healthy again. For a healthy
        one (nearly every push) the row is only noted, and deleted with the next read."""
        pusher.delivered.append(row.position)
        if pusher.failures:
            await self._store_state(pusher, PusherState(0, None))
            pusher.failures, pusher.retry_at = 0, None

    async def _store_state(self, pusher: _Pusher, state: PusherState) -> None:
        """Store the pusher's retry state, deleting the rows it delivered meanwhile in the
        same transaction (a failing pusher may wait long: they are not left to a restart)."""
        delivered = list(pusher.delivered)

        async def store(conn: asyncpg.Connection) -> None:
            await queue_store.delete_queued(conn, delivered)
            await queue_store.set_pusher_state(conn, pusher.key, state)

        await self._in_transaction(store, "push_state")
        del pusher.delivered[:len(delivered)]

    async def _rejected(self, pusher: _Pusher) -> None:
        """The gateway will never deliver to this pushkey: the pusher goes, with its queue."""
        key = pusher.key
        log.info("push gateway rejected the pushkey of %s: deleting the pusher", key)
        metrics.PUSH_REJECTED.labels(HTTP).inc()
        async def delete(conn: asyncpg.Connection) -> list[str]:
            await push_store.delete_pusher(conn, key.user_id, key.app_id, key.pushkey)
            return [key.user_id]

        async with self._db_slots:
            await self.owners.write(self.db, delete, name="push_rejected")
        pusher.gone = True
        self._last_unread.pop(key, None)

    async def _failed(self, pusher: _Pusher) -> None:
        """One more consecutive failure: the next attempt waits longer, also after a restart."""
        pusher.failures += 1
        pusher.retry_at = self.backoff.retry_at_ms(pusher.failures, self.clock.now_ms())
        try:
            await self._store_state(pusher, PusherState(pusher.failures, pusher.retry_at))
        except Exception:
            log.exception("storing the backoff of %s failed", pusher.key)
