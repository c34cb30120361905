"""The outbound federation sender: delivers the durable per-destination queue as transactions.

Theory of operation. Rows are queued in PostgreSQL (`storage/outbox.py`) by the transaction
that makes them durable: the room cluster's, for PDUs (this class is one of its observers and
stages the rows in `EventWrites.outbound`), or `send_edu`'s own, for EDUs. After the commit the
destinations are woken: each destination with work has one task, which reads the oldest batch
(≤ 50 PDUs, ≤ 100 EDUs), PUTs it as one transaction and waits for the answer, so exactly one
transaction is in flight per destination and the peer sees our events in queue order. On a 200
the batch's rows are deleted and the next batch goes out at once (catch-up after an outage is
just this loop running until the queue is empty). On a failure the *same* batch, under the same
txnId, is retried after an exponential backoff (`protocol/backoff.py`) whose state is stored,
so a restart resumes where it stopped; any request from the peer (`peer_is_back`) cuts the wait
short. Rows leave the queue only when the peer accepted them, or when it refused the whole
transaction with 400 or 413, which no retry can change, or when the destination expired: it
accepted no transaction since the oldest queued row was queued, `destination_expiry_ms` ago
(days by default). A server that never answers (a made-up name) then costs nothing more than
its retries until then; its whole queue is dropped and counted.

The per-destination metrics name at most `metrics_destinations` destinations; a destination
keeps the label it was given when the sender first took it up until it goes idle
(`federation/metric_labels.py`), so its gauges add up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from federation.client import FederationClient, HttpResponseError, path_segment
from federation.metric_labels import OTHER, DestinationLabels
from homeserver import metrics
from homeserver.logs import outside_requests
from homeserver.protocol.backoff import PRODUCTION_BACKOFF, Backoff
from homeserver.protocol.state_keys import StateKey
from homeserver.services.clock import Clock
from homeserver.services.outbound_edus import servers_of
from homeserver.services.rooms.writes import EventWrites, PersistedEvent
from storage import outbox as outbox_store
from storage.database import Database
from storage.outbox import Batch, DestinationState

log = logging.getLogger(__name__)

SEND_PATH = "/_matrix/federation/v1/send/"
# Answers to a whole transaction that retrying cannot change: its shape or its size.
_HOPELESS = frozenset({400, 413})
DEFAULT_DESTINATION_EXPIRY_MS = 3 * 24 * 3600 * 1000
DEFAULT_METRICS_DESTINATIONS = 50
_LABELLED_METRICS = (
    metrics.FEDERATION_QUEUED, metrics.FEDERATION_TRANSACTIONS_SENT,
    metrics.FEDERATION_TRANSACTIONS_FAILED, metrics.FEDERATION_TRANSACTIONS_DROPPED,
    metrics.FEDERATION_BACKOFF_SECONDS, metrics.FEDERATION_PDU_AGE_SECONDS,
)


def destinations_for(pdu: Mapping[str, Any], members: Iterable[str], own_server: str) -> list[str]:
    """The servers an event goes to: those of the room's joined members before it and, for a
    membership event other than a join, its target's (an invite revoked, a kick or a ban);
    never our own. A join's own server has it already (it made the event through send_join),
    and would refuse it while it is still storing the room. Sorted, so the queue rows come
    out in the same order every time."""
    users = set(members)
    content = pdu.get("content")
    membership = content.get("membership") if isinstance(content, Mapping) else None
    if (
        pdu.get("type") == "m.room.member" and isinstance(pdu.get("state_key"), str)
        and membership != "join"
    ):
        users.add(pdu["state_key"])
    servers = servers_of(users)
    servers.discard(own_server)
    return sorted(servers)


def transaction_id(batch: Batch) -> str:
    """The txnId of a batch: its first and last queue positions. Positions are never reused
    and delivered rows are deleted, so no two batches of a destination share one, also across
    restarts; a batch rebuilt after a restart with more rows in it gets a new one, so the peer
    does not mistake it for the smaller transaction it may already have processed."""
    p = [batch.pdus[0].position, batch.pdus[-1].position] if batch.pdus else [0, 0]
    e = [batch.edus[0].position, batch.edus[-1].position] if batch.edus else [0, 0]
    return "-".join(str(n) for n in (*p, *e))


@dataclass(slots=True)
class _Destination:
    """What the sender holds in memory for one destination."""

    name: str
    label: str  # on the per-destination metrics: its name, or "other"
    failures: int = 0
    last_success_ts: int | None = None  # ms; None: none known
    retry_at: int | None = None  # ms; None while healthy
    pending: bool = False  # rows were queued since its task last read the queue
    # When its oldest queued item was queued (ms), as far as known; None: nothing queued.
    oldest_ts: int | None = None
    task: asyncio.Task[None] | None = None
    retry_now: asyncio.Event = field(default_factory=asyncio.Event)


class FederationSender:
    """Sends every queued PDU and EDU to its destination, in order, exactly one transaction in
    flight per destination; an `EventObserver` of the room cluster's writes."""

    def __init__(
        self, db: Database, client: FederationClient, server_name: str, *,
        clock: Clock, backoff: Backoff = PRODUCTION_BACKOFF,
        destination_expiry_ms: int = DEFAULT_DESTINATION_EXPIRY_MS,
        metrics_destinations: int = DEFAULT_METRICS_DESTINATIONS,
    ) -> None:
        self.db = db
        self.client = client
        self.server_name = server_name
        self.clock = clock
        self.backoff = backoff
        self.destination_expiry_ms = destination_expiry_ms
        self.labels = DestinationLabels(metrics_destinations)
        self._destinations: dict[str, _Destination] = {}
        self._stopped = False

    def oldest_age_s(self) -> float:
        """Age of the oldest item queued for any destination (0: none). Called by the metrics
        exposition's thread: it reads a copy of the destinations."""
        oldest = [d.oldest_ts for d in self._destinations.copy().values() if d.oldest_ts]
        return max(0, self.clock.now_ms() - min(oldest)) / 1000 if oldest else 0.0

    # ---- the room cluster's EventObserver -------------------------------------------------

    async def on_event(
        self, conn: asyncpg.Connection, event: PersistedEvent,
        state_before: Mapping[StateKey, Mapping[str, Any]], members: set[str],
        writes: EventWrites,
    ) -> None:
        if event.federate:
            writes.outbound.extend(
                (d, event.event_id) for d in destinations_for(event.pdu, members, self.server_name)
            )

    def committed(self, writes: EventWrites) -> None:
        counts: dict[str, int] = {}
        for destination, _ in writes.outbound:
            counts[destination] = counts.get(destination, 0) + 1
        for destination, n in counts.items():
            self._wake(destination, n)

    # ---- the public interface ---------------------------------------------------------------

    async def send_edu(
        self, destinations: Iterable[str], edu_type: str, content: dict[str, Any]
    ) -> None:
        """Queue an EDU for each destination; durable once this returns."""
        targets = sorted(set(destinations) - {self.server_name})
        if not targets:
            return
        await self.db.transaction(
            lambda conn: outbox_store.insert_edus(conn, targets, edu_type, content),
            name="outbox_edus",
        )
        for destination in targets:
            self._wake(destination, 1)

    def peer_is_back(self, destination: str) -> None:
        """The peer just reached us, so it is up: drop its backoff and retry at once. Called
        for every authenticated inbound request, so it costs nothing for a healthy peer."""
        if self.retry_now(destination):
            log.info("%s contacted us: retrying it now", destination)

    def retry_now(self, destination: str) -> bool:
        """Drop the backoff this sender holds for a destination and retry it at once (its
        stored state is the caller's); False if it was not backing off."""
        dest = self._destinations.get(destination)
        if dest is None or dest.failures == 0:
            return False
        dest.failures, dest.retry_at = 0, None
        self._show_backoff(dest)
        dest.retry_now.set()
        return True

    async def start(self) -> None:
        """Resume every destination with queued rows (after a stop or a crash), each no
        earlier than its stored retry time."""
        self._stopped = False
        async def load(
            conn: asyncpg.Connection,
        ) -> tuple[dict[str, int], dict[str, DestinationState], dict[str, int]]:
            depths = await outbox_store.get_queue_depths(conn)
            states = await outbox_store.get_destination_states(conn, list(depths))
            return depths, states, await outbox_store.get_oldest_queued(conn)

        depths, states, oldest = await self.db.run(load, name="outbox_resume")
        _RUNNING.add(self)
        # Those that accepted a transaction most recently take the metric labels first.
        def last_success(destination: str) -> int:
            state = states.get(destination)
            return -(state.last_success_ts or 0) if state is not None else 0

        totals: dict[str, int] = {OTHER: 0}
        for destination in sorted(depths, key=last_success):
            dest = self._destination(destination)
            state = states.get(destination)
            if state is not None:
                dest.failures, dest.retry_at = state.failures, state.retry_at
                dest.last_success_ts = state.last_success_ts
            dest.oldest_ts = oldest.get(destination)
            totals[dest.label] = totals.get(dest.label, 0) + depths[destination]
            self._show_backoff(dest)
        for label, total in totals.items():
            metrics.FEDERATION_QUEUED.labels(label).set(total)
        for destination in depths:
            self._wake(destination, 0)
        if depths:
            log.info("federation sender resumed %d destinations", len(depths))

    async def stop(self) -> None:
        """Cancel every destination's task. Nothing is lost: undelivered rows stay queued and
        the backoff state is already stored; `start` picks both up again."""
        self._stopped = True
        _RUNNING.discard(self)
        tasks = [d.task for d in self._destinations.values() if d.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ---- one destination's task -------------------------------------------------------------

    def _destination(self, destination: str) -> _Destination:
        dest = self._destinations.get(destination)
        if dest is None:
            dest = _Destination(destination, self.labels.label(destination))
            self._destinations[destination] = dest
        return dest

    def _show_backoff(self, dest: _Destination) -> None:
        """The backoff gauge, for destinations with their own label (a sum means nothing)."""
        if dest.label != OTHER:
            metrics.FEDERATION_BACKOFF_SECONDS.labels(dest.label).set(
                self.backoff.delay_s(dest.failures)
            )

    def _wake(self, destination: str, queued: int) -> None:
        if self._stopped:
            return  # the rows are durable; the next start counts and sends them
        dest = self._destination(destination)
        metrics.FEDERATION_QUEUED.labels(dest.label).inc(queued)
        if queued and dest.oldest_ts is None:
            dest.oldest_ts = self.clock.now_ms()  # until its task reads the queue
        dest.pending = True
        if dest.task is None:
            dest.task = asyncio.create_task(
                self._run(dest), name=f"federation-sender {destination}",
                context=outside_requests(),
            )

    async def _run(self, dest: _Destination) -> None:
        """Send batches until the queue is empty; then the task ends (a wake starts another)."""
        try:
            while True:
                await self._wait_until_due(dest)
                dest.pending = False
                try:
                    batch = await self.db.run(
                        lambda conn: outbox_store.get_batch(conn, dest.name), name="outbox_read"
                    )
                    if not batch:
                        if dest.pending:
                            continue  # queued while we read: look again
                        dest.oldest_ts = None
                        return
                    dest.oldest_ts = _oldest(batch)
                    await self._deliver(dest, batch)
                except Exception:
                    # The database failed us (the peer's failures are handled in _deliver):
                    # back off like for a failed transaction rather than lose the task.
                    log.exception("federation sender for %s failed", dest.name)
                    await self._failed(dest)
        finally:
            dest.task = None
            if dest.failures == 0 and not dest.pending:
                self._destinations.pop(dest.name, None)

    async def _wait_until_due(self, dest: _Destination) -> None:
        while dest.retry_at is not None:
            delay = (dest.retry_at - self.clock.now_ms()) / 1000
            if delay <= 0:
                return
            dest.retry_now.clear()
            try:
                await asyncio.wait_for(dest.retry_now.wait(), delay)
            except TimeoutError:
                return

    async def _deliver(self, dest: _Destination, batch: Batch) -> None:
        """Send one batch until the peer takes it; the body and the txnId stay the same across
        the retries, so the peer can deduplicate them. Every failure is retried after the
        backoff except a 400 or 413 answer to the whole transaction: the peer finds it
        malformed or too large, which no retry changes, so the batch is logged, counted and
        dropped rather than wedging the destination's queue behind it forever."""
        txn_id = transaction_id(batch)
        body = {
            "origin": self.server_name,
            "origin_server_ts": self.clock.now_ms(),
            "pdus": [json.loads(p.json) for p in batch.pdus],
            "edus": [{"edu_type": e.edu_type, "content": e.content} for e in batch.edus],
        }
        path = SEND_PATH + path_segment(txn_id)
        while True:
            try:
                response = await self.client.put_json(dest.name, path, body)
            except HttpResponseError as e:
                if e.status not in _HOPELESS:
                    if await self._attempt_failed(dest, batch, txn_id, e):
                        continue
                    return
                log.error(
                    "%s refused transaction %s for good (%s): dropping its %d PDUs and %d EDUs",
                    dest.name, txn_id, e, len(batch.pdus), len(batch.edus),
                )
                metrics.FEDERATION_TRANSACTIONS_FAILED.labels(dest.label).inc()
                metrics.FEDERATION_TRANSACTIONS_DROPPED.labels(dest.label).inc()
                await self._done(dest, batch)  # the peer did answer: it is up
                return
            except Exception as e:
                if await self._attempt_failed(dest, batch, txn_id, e):
                    continue
                return
            metrics.FEDERATION_TRANSACTIONS_SENT.labels(dest.label).inc()
            await self._done(dest, batch)
            _log_pdu_errors(dest.name, txn_id, response)
            return

    async def _attempt_failed(
        self, dest: _Destination, batch: Batch, txn_id: str, error: Exception
    ) -> bool:
        """Count the failure and wait out the backoff; False if the destination expired
        instead (its queue is gone: nothing to retry)."""
        metrics.FEDERATION_TRANSACTIONS_FAILED.labels(dest.label).inc()
        if self._expired(dest, batch):
            await self._expire(dest)
            return False
        await self._failed(dest)
        log.warning(
            "transaction %s to %s failed (%s); retrying in %.1f s", txn_id, dest.name,
            str(error) or type(error).__name__, self.backoff.delay_s(dest.failures),
        )
        await self._wait_until_due(dest)
        return True

    def _expired(self, dest: _Destination, batch: Batch) -> bool:
        """Whether the destination accepted nothing since its oldest queued row (the batch's
        first) was queued, which is longer ago than the expiry."""
        oldest = _oldest(batch)
        if dest.last_success_ts is not None and dest.last_success_ts >= oldest:
            return False
        return self.clock.now_ms() - oldest >= self.destination_expiry_ms

    async def _expire(self, dest: _Destination) -> None:
        """Drop the destination's whole queue and forget it (its stored backoff stays); rows
        queued for it later start afresh."""
        dropped = await self.db.transaction(
            lambda conn: outbox_store.delete_destination_queue(conn, dest.name),
            name="outbox_expire",
        )
        log.warning(
            "%s accepted no transaction for %d ms: dropped the %d items queued for it",
            dest.name, self.destination_expiry_ms, dropped,
        )
        metrics.FEDERATION_DESTINATIONS_EXPIRED.inc()
        metrics.FEDERATION_QUEUED.labels(dest.label).dec(dropped)
        if self.labels.release(dest.name):
            for metric in _LABELLED_METRICS:
                with contextlib.suppress(KeyError):
                    metric.remove(dest.name)
        dest.failures, dest.retry_at = 0, None  # so that the task's end forgets it
        dest.oldest_ts = None

    async def _failed(self, dest: _Destination) -> None:
        """One more consecutive failure: the next attempt waits longer, also after a restart."""
        dest.failures += 1
        now_ms = self.clock.now_ms()
        dest.retry_at = self.backoff.retry_at_ms(dest.failures, now_ms)
        self._show_backoff(dest)
        state = DestinationState(dest.failures, dest.retry_at, None, failed_ts=now_ms)
        try:
            await self.db.transaction(
                lambda conn: outbox_store.upsert_destination_state(conn, dest.name, state),
                name="outbox_backoff",
            )
        except Exception:
            log.exception("storing the backoff of %s failed", dest.name)

    async def _done(self, dest: _Destination, batch: Batch) -> None:
        """The peer answered the batch: its rows leave the queue and the backoff is reset, in
        one transaction. Should it fail, the batch is sent again, under the same txnId."""
        now_ms = self.clock.now_ms()
        state = DestinationState(0, None, now_ms)

        async def record(conn: asyncpg.Connection) -> None:
            await outbox_store.delete_batch(conn, dest.name, batch)
            await outbox_store.upsert_destination_state(conn, dest.name, state)
            if batch.pdus:
                await outbox_store.record_sent_pdus(
                    conn, dest.name, [pdu.event_id for pdu in batch.pdus]
                )

        await self.db.transaction(record, name="outbox_delivered")
        dest.failures, dest.retry_at, dest.last_success_ts = 0, None, now_ms
        dest.oldest_ts = None  # the next read of the queue tells
        self._show_backoff(dest)
        metrics.FEDERATION_QUEUED.labels(dest.label).dec(len(batch.pdus) + len(batch.edus))
        age = metrics.FEDERATION_PDU_AGE_SECONDS.labels(dest.label)
        for pdu in batch.pdus:
            age.observe(max(0, now_ms - pdu.enqueued_ts) / 1000)


def _oldest(batch: Batch) -> int:
    """When the batch's oldest item was queued (ms): its first PDU's or its first EDU's."""
    return min([p.enqueued_ts for p in batch.pdus[:1]] + [e.enqueued_ts for e in batch.edus[:1]])


# The senders running in this process, whose oldest queued item the gauge reports (one in a
# server; the tests run several servers in one process).
_RUNNING: set[FederationSender] = set()
metrics.FEDERATION_OUTBOX_OLDEST_AGE_SECONDS.set_function(
    lambda: max((sender.oldest_age_s() for sender in _RUNNING.copy()), default=0.0)
)


def _log_pdu_errors(destination: str, txn_id: str, response: Any) -> None:
    """A peer's per-PDU errors are its verdict on those events; they are not retried."""
    results = response.get("pdus") if isinstance(response, dict) else None
    if not isinstance(results, dict):
        return
    for event_id, result in results.items():
        if isinstance(result, dict) and "error" in result:
            log.warning(
                "%s rejected %s (transaction %s): %s",
                destination, event_id, txn_id, result["error"],
            )
