"""Delivers the durable per-appservice queue as transactions (application-service-api "Pushing
events").

Theory of operation. The room engine tells this class of every event inside the transaction
that persists it (`on_event`, an `EventObserver`); the appservices interested in it
(`AppServiceInterest`) get a queue row each, staged in `EventWrites.appservice` and written
with the batch's other rows in one statement. Ephemeral events are queued by
`AppServiceEphemeral` through `queue_ephemeral`. After a commit the appservices with new rows
are woken: each has at most one task, which claims a transaction (the oldest rows, at most
`MAX_EVENTS` events and `MAX_EPHEMERAL` ephemeral events, numbered and stored whole in the
database transaction that takes them off the queue: `storage/appservice_queue.py`), PUTs it
and waits for the answer, so exactly one transaction is in flight per appservice and it sees
events in queue order. A 2xx answer deletes the transaction and the next is claimed at once
(catch-up after an outage is this loop running until the queue is empty). Any other outcome
retries the *same* stored transaction, same txnId and same bytes, after an exponential backoff
(`homeserver/protocol/backoff.py`, handed in by app.py) whose state is stored, so a restart resumes
where it stopped and re-sends the unacknowledged transaction first. The appservice may thus
see a transaction twice (its acknowledgement lost, or a crash between its 200 and our commit),
always under the same txnId, which the spec tells it to deduplicate on; it never sees an event
in two different transactions, nor misses one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg

from homeserver import metrics
from homeserver.protocol.appservice import Registration
from homeserver.protocol.state_keys import StateKey
from homeserver.services.appservice_client import AppServiceClient
from homeserver.services.appservice_interest import AppServiceInterest
from homeserver.services.clock import Clock
from homeserver.services.event_views import load_events, serialize_events
from homeserver.services.rooms.view import RoomView
from homeserver.services.rooms.writes import EventWrites, PersistedEvent
from storage import appservice_queue as queue_store
from storage.appservice_queue import PendingTxn, QueuedItem
from storage.database import Database

log = logging.getLogger(__name__)

MAX_EVENTS = 100
MAX_EPHEMERAL = 100
# MSC2409's name for `ephemeral`, which bridges built before Matrix 1.13 read.
UNSTABLE_EPHEMERAL = "de.sorunome.msc2409.ephemeral"


class RetrySchedule(Protocol):
    """How long to wait after n consecutive failures (`homeserver.protocol.backoff.Backoff`, which
    app.py hands in: services do not import federation)."""

    def delay_s(self, failures: int) -> float: ...

    def retry_at_ms(self, failures: int, now_ms: int) -> int: ...


@dataclass(slots=True)
class _Queue:
    """What the sender holds in memory for one appservice."""

    registration: Registration
    failures: int = 0
    retry_at: int | None = None  # ms; None while healthy
    pending: bool = False  # rows were queued since its task last looked
    depth: int = 0  # items queued or in the unacknowledged transaction
    oldest_ts: int | None = None  # ms: when the oldest of them was queued
    task: asyncio.Task[None] | None = None
    retry_now: asyncio.Event = field(default_factory=asyncio.Event)


def transaction_body(
    events: Sequence[dict[str, Any]], ephemeral: Sequence[dict[str, Any]], *,
    receive_ephemeral: bool,
) -> str:
    """The JSON of one transaction: `events` always, the ephemeral list under both its
    stable and its MSC2409 name when there is any."""
    body: dict[str, Any] = {"events": list(events)}
    if receive_ephemeral and ephemeral:
        body["ephemeral"] = body[UNSTABLE_EPHEMERAL] = list(ephemeral)
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def take_batch(items: Sequence[QueuedItem]) -> list[QueuedItem]:
    """The longest prefix of the queue within the per-transaction limits (queue order is kept
    across transactions, so nothing later may jump ahead of what did not fit)."""
    taken: list[QueuedItem] = []
    events = ephemeral = 0
    for item in items:
        if item.event_id is not None:
            if events == MAX_EVENTS:
                break
            events += 1
        else:
            if ephemeral == MAX_EPHEMERAL:
                break
            ephemeral += 1
        taken.append(item)
    return taken


class AppServiceSender:
    """Sends every queued event to its appservices, in order, one transaction in flight per
    appservice; an `EventObserver` of the room cluster's writes."""

    def __init__(
        self, db: Database, engine: RoomView, registrations: Sequence[Registration],
        interest: AppServiceInterest, client: AppServiceClient, *, clock: Clock,
        backoff: RetrySchedule,
    ) -> None:
        self.db = db
        self.engine = engine
        self.interest = interest
        self.client = client
        self.clock = clock
        self.backoff = backoff
        # Only appservices with a URL get traffic; the others asked for none.
        self._queues = {r.id: _Queue(r) for r in registrations if r.url is not None}
        self._stopped = True
        for appservice_id, queue in self._queues.items():
            # Every series exists from the start (and there are as many as registrations).
            metrics.APPSERVICE_TRANSACTIONS_SENT.labels(appservice_id)
            metrics.APPSERVICE_TRANSACTIONS_FAILED.labels(appservice_id)
            metrics.APPSERVICE_QUEUE_DEPTH.labels(appservice_id).set(0)
            metrics.APPSERVICE_QUEUE_AGE_SECONDS.labels(appservice_id).set_function(
                functools.partial(self._age_s, queue)
            )

    # ---- the room cluster's EventObserver -------------------------------------------------

    async def on_event(
        self, conn: asyncpg.Connection, event: PersistedEvent,
        state_before: Mapping[StateKey, Mapping[str, Any]], members: set[str],
        writes: EventWrites,
    ) -> None:
        if not self._queues:
            return
        room_id = event.stored.room_id
        unsettled = any(
            self.interest.changes_room_interest(e.stored.type, e.stored.state_key)
            for e in writes.events
        )
        interested = await self.interest.of_event(
            conn, room_id, event.pdu, room_unsettled=unsettled
        )
        writes.appservice.extend(
            (a, event.event_id) for a in sorted(interested) if a in self._queues
        )

    def committed(self, writes: EventWrites) -> None:
        for new in writes.events:
            stored = new.stored
            if self.interest.changes_room_interest(stored.type, stored.state_key):
                self.interest.forget_room(stored.room_id)
        counts = Counter(appservice_id for appservice_id, _ in writes.appservice)
        for appservice_id, n in counts.items():
            self._wake(appservice_id, n)

    # ---- the public interface -------------------------------------------------------------

    def wants_ephemeral(self) -> list[Registration]:
        """The appservices that receive ephemeral events (and have a URL to get them at)."""
        return [q.registration for q in self._queues.values() if q.registration.receive_ephemeral]

    async def queue_ephemeral(self, appservice_ids: Sequence[str], event: dict[str, Any]) -> None:
        """Queue an ephemeral event for these appservices; durable once this returns."""
        targets = sorted(a for a in set(appservice_ids) if a in self._queues)
        if not targets:
            return
        await self.db.transaction(
            lambda conn: queue_store.insert_ephemeral(conn, targets, event),
            name="appservice_ephemeral",
        )
        for appservice_id in targets:
            self._wake(appservice_id, 1)

    def appservice_is_back(self, appservice_id: str) -> None:
        """The appservice just answered a ping (bridges ping when they start): it is up, so
        its backoff ends and a failed transaction is retried at once."""
        queue = self._queues.get(appservice_id)
        if queue is None:
            return
        if queue.failures:
            log.info("appservice %s answered a ping: retrying it now", appservice_id)
        queue.failures, queue.retry_at = 0, None
        # Left set until the next attempt starts: a ping answered while an attempt is in
        # flight still cuts short the wait after that attempt fails.
        queue.retry_now.set()

    async def start(self) -> None:
        """Resume every appservice that is owed something (after a stop or a crash), each no
        earlier than its stored retry time."""
        async def load(
            conn: asyncpg.Connection,
        ) -> tuple[dict[str, queue_store.Backlog], dict[str, queue_store.DeliveryState]]:
            return await queue_store.get_backlogs(conn), await queue_store.get_delivery_states(conn)

        backlogs, states = await self.db.run(load, name="appservice_resume")
        self._stopped = False
        for appservice_id, backlog in backlogs.items():
            queue = self._queues.get(appservice_id)
            if queue is None:
                log.warning(
                    "%d items are queued for appservice %s, which is no longer registered",
                    backlog.items, appservice_id,
                )
                continue
            state = states.get(appservice_id)
            if state is not None:
                queue.failures, queue.retry_at = state.failures, state.retry_at
            queue.depth, queue.oldest_ts = backlog.items, backlog.oldest_ts
            metrics.APPSERVICE_QUEUE_DEPTH.labels(appservice_id).set(backlog.items)
            self._wake(appservice_id, 0)
        if backlogs:
            log.info("appservice sender resumed %d appservices", len(backlogs))

    async def stop(self) -> None:
        """Cancel every task. Nothing is lost: the queue, the unacknowledged transaction and
        the backoff are stored; `start` picks them up again."""
        self._stopped = True
        tasks = [q.task for q in self._queues.values() if q.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ---- one appservice's task --------------------------------------------------------------

    def _age_s(self, queue: _Queue) -> float:
        if queue.oldest_ts is None:
            return 0.0
        return max(0, self.clock.now_ms() - queue.oldest_ts) / 1000

    def _wake(self, appservice_id: str, queued: int) -> None:
        queue = self._queues[appservice_id]
        if queued:
            if queue.depth == 0:
                queue.oldest_ts = self.clock.now_ms()
            queue.depth += queued
            metrics.APPSERVICE_QUEUE_DEPTH.labels(appservice_id).set(queue.depth)
        if self._stopped:
            return  # the rows are durable; the next start sends them
        queue.pending = True
        if queue.task is None:
            queue.task = asyncio.create_task(
                self._run(queue), name=f"appservice-sender {appservice_id}"
            )

    async def _run(self, queue: _Queue) -> None:
        """Send transactions until nothing is owed; then the task ends (a wake starts
        another)."""
        try:
            while True:
                await self._wait_until_due(queue)
                queue.pending = False
                try:
                    txn = await self.db.transaction(
                        lambda conn: self._next_txn(conn, queue.registration),
                        name="appservice_claim",
                    )
                    if txn is None:
                        if queue.pending:
                            continue  # queued while we looked: look again
                        return
                    await self._deliver(queue, txn)
                except Exception:
                    # The database failed us (the appservice's failures are handled in
                    # _deliver): back off like for a failed transaction rather than stop.
                    log.exception("appservice sender for %s failed", queue.registration.id)
                    await self._failed(queue)
        finally:
            queue.task = None

    async def _next_txn(
        self, conn: asyncpg.Connection, registration: Registration
    ) -> PendingTxn | None:
        """The unacknowledged transaction if there is one, else a new one claimed from the
        oldest rows (None: nothing is owed)."""
        pending = await queue_store.get_pending_txn(conn, registration.id)
        if pending is not None:
            return pending
        items = take_batch(
            await queue_store.get_queued(conn, registration.id, MAX_EVENTS + MAX_EPHEMERAL)
        )
        if not items:
            return None
        event_ids = [i.event_id for i in items if i.event_id is not None]
        stored = await load_events(conn, event_ids)  # an event deleted since is skipped
        events = await serialize_events(conn, self.engine, stored, None, now=self.clock.now_ms())
        ephemeral = [i.ephemeral for i in items if i.ephemeral is not None]
        body = transaction_body(
            events, ephemeral, receive_ephemeral=registration.receive_ephemeral
        )
        return await queue_store.claim_txn(
            conn, registration.id, [i.position for i in items], body, events=len(event_ids),
            ephemeral=len(ephemeral), oldest_ts=items[0].enqueued_ts,
        )

    async def _wait_until_due(self, queue: _Queue) -> None:
        """Until the retry time, unless `appservice_is_back` says to go now."""
        if queue.retry_at is None:
            return
        delay = max(0.0, (queue.retry_at - self.clock.now_ms()) / 1000)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(queue.retry_now.wait(), delay)
        queue.retry_now.clear()  # used up: it never cuts a later wait short

    async def _deliver(self, queue: _Queue, txn: PendingTxn) -> None:
        """PUT one transaction until the appservice takes it; its ID stays the same across
        the retries, and its body too but for events purged or redacted meanwhile."""
        registration = queue.registration
        queue.oldest_ts = txn.oldest_ts
        while True:
            queue.retry_now.clear()  # only a ping from now on speaks for this attempt
            try:
                await self.client.put_transaction(registration, txn.txn_id, txn.body)
            except Exception as e:
                metrics.APPSERVICE_TRANSACTIONS_FAILED.labels(registration.id).inc()
                await self._failed(queue)
                log.warning(
                    "transaction %d to appservice %s failed (%s); retrying in %.1f s",
                    txn.txn_id, registration.id, str(e) or type(e).__name__,
                    self.backoff.delay_s(queue.failures),
                )
                await self._wait_until_due(queue)
                # Read again: a purge or redaction since may have taken events out of it.
                reread = await self.db.run(
                    lambda conn: queue_store.get_pending_txn(conn, registration.id)
                )
                if reread is None or reread.txn_id != txn.txn_id:
                    return
                txn = reread
                continue
            metrics.APPSERVICE_TRANSACTIONS_SENT.labels(registration.id).inc()
            await self._done(queue, txn)
            return

    async def _failed(self, queue: _Queue) -> None:
        """One more consecutive failure: the next attempt waits longer, also after a restart."""
        queue.failures += 1
        queue.retry_at = self.backoff.retry_at_ms(queue.failures, self.clock.now_ms())
        state = queue_store.DeliveryState(queue.failures, queue.retry_at)
        try:
            await self.db.transaction(
                lambda conn: queue_store.set_delivery_state(
                    conn, queue.registration.id, state
                ),
                name="appservice_backoff",
            )
        except Exception:
            log.exception("storing the backoff of appservice %s failed", queue.registration.id)

    async def _done(self, queue: _Queue, txn: PendingTxn) -> None:
        """The appservice acknowledged the transaction: forget it and reset the backoff, in
        one database transaction. Should that fail, the same transaction is sent again."""
        now_ms = self.clock.now_ms()
        await self.db.transaction(
            lambda conn: queue_store.complete_txn(conn, queue.registration.id, txn.txn_id, now_ms),
            name="appservice_delivered",
        )
        queue.failures, queue.retry_at = 0, None
        queue.depth = max(0, queue.depth - txn.events - txn.ephemeral)
        if queue.depth == 0:
            queue.oldest_ts = None
        metrics.APPSERVICE_QUEUE_DEPTH.labels(queue.registration.id).set(queue.depth)
