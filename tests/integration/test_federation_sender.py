"""The outbound federation sender against stand-in destinations over real TLS, on a real
database: order and the spec's transaction limits, one transaction in flight, backoff that is
stored and survives restarts, catch-up after an outage, the txnId of a retried batch, a batch
refused for good, and the wiring that ends a backoff when the peer contacts us."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from federation.client import HttpResponseError
from federation.sender import SEND_PATH, FederationSender
from homeserver.protocol.backoff import Backoff
from homeserver.protocol.signing import generate_signing_key
from homeserver.services.clock import SYSTEM_CLOCK
from homeserver.services.rooms.writes import EventWrites, PersistedEvent
from storage import outbox
from storage.database import Database
from storage.outbox import DestinationState
from tests.conftest import MakeServer
from tests.federation_helpers import StandIn, insecure_client
from tests.federation_peers import Peers
from tests.storage.rows import numbered_event

KEY = generate_signing_key("t1")
ORIGIN = "origin.example"
ROOM = "!room:origin.example"
DEADLINE_S = 10.0

QUEUED = "moot_federation_outbox_queued_items"
SENT = "moot_federation_transactions_sent_total"
FAILED = "moot_federation_transactions_failed_total"
DROPPED = "moot_federation_transactions_dropped_total"
BACKOFF = "moot_federation_backoff_seconds"
AGES = "moot_federation_pdu_delivery_age_seconds_count"


def sample(name: str, destination: str) -> float:
    return REGISTRY.get_sample_value(name, {"destination": destination}) or 0.0


async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll a condition on the sender's side (its database rows, its metrics)."""
    deadline = time.monotonic() + DEADLINE_S
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


@dataclass
class Attempt:
    txn_id: str
    body: dict[str, Any]
    status: int | None = None  # None while the peer has not answered


class Destination:
    """A stand-in destination: records every transaction PUT to it and answers as told."""

    def __init__(self, stand_in: StandIn) -> None:
        self.stand_in = stand_in
        self.attempts: list[Attempt] = []
        self.status = 200
        self.statuses: list[int] = []  # answers for the next attempts, before `status`
        self.errors: dict[str, str] = {}  # per-PDU errors to report, by event ID
        self.gate = asyncio.Event()  # requests wait until it is set
        self.gate.set()
        self.delay_s = 0.0
        self.in_flight = 0
        self.max_in_flight = 0
        self._changed = asyncio.Event()
        stand_in.prefix_handlers[SEND_PATH] = self._handle

    @property
    def name(self) -> str:
        return self.stand_in.server_name

    def accepted(self) -> list[Attempt]:
        return [a for a in self.attempts if a.status == 200]

    def delivered(self) -> list[int]:
        """The numbers of the PDUs it accepted, in the order it received them."""
        return [p["content"]["n"] for a in self.accepted() for p in a.body["pdus"]]

    def delivered_edus(self) -> list[Any]:
        return [e["content"]["n"] for a in self.accepted() for e in a.body["edus"]]

    async def until(self, condition: Callable[[], bool], what: str) -> None:
        """Wait, without polling, until a request or an answer makes ``condition`` true."""
        deadline = time.monotonic() + DEADLINE_S
        while not condition():
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), deadline - time.monotonic())
            except TimeoutError:
                raise AssertionError(f"timed out waiting for {what}") from None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            assert request.method == "PUT"
            assert request.headers["Authorization"].startswith("X-Matrix ")
            attempt = Attempt(request.path.removeprefix(SEND_PATH), await request.json())
            self.attempts.append(attempt)
            self._changed.set()
            await self.gate.wait()
            if self.delay_s:
                await asyncio.sleep(self.delay_s)  # a slow peer
            attempt.status = self.statuses.pop(0) if self.statuses else self.status
            if attempt.status != 200:
                return web.json_response({"errcode": "M_UNKNOWN"}, status=attempt.status)
            ids = [f"$e{p['content']['n']}" for p in attempt.body["pdus"]]
            return web.json_response({"pdus": {
                i: {"error": self.errors[i]} if i in self.errors else {} for i in ids
            }})
        finally:
            self.in_flight -= 1
            self._changed.set()


@pytest.fixture
async def make_sender(db: Database) -> AsyncIterator[Callable[..., FederationSender]]:
    made: list[FederationSender] = []

    def make(**kwargs: Any) -> FederationSender:
        kwargs.setdefault("backoff", Backoff(base_s=0.02, max_s=0.1))
        kwargs.setdefault("clock", SYSTEM_CLOCK)
        sender = FederationSender(db, insecure_client(ORIGIN, KEY), ORIGIN, **kwargs)
        made.append(sender)
        return sender

    yield make
    for sender in made:
        await sender.stop()
        await sender.client.transport.close()


async def _destination(path: Path) -> AsyncIterator[Destination]:
    destination = Destination(await StandIn(path).start())
    yield destination
    destination.gate.set()
    await destination.stand_in.stop()


@pytest.fixture
async def peer(tmp_path: Path) -> AsyncIterator[Destination]:
    async for destination in _destination(tmp_path / "peer"):
        yield destination


@pytest.fixture
async def other_peer(tmp_path: Path) -> AsyncIterator[Destination]:
    async for destination in _destination(tmp_path / "other"):
        yield destination


async def persist(
    db: Database, sender: FederationSender, numbers: Iterable[int], members: set[str]
) -> None:
    """What the room engine does for a batch of events: the observer stages the outbox rows,
    `EventWrites.flush` writes them with the events, `committed` follows the commit."""
    new = [numbered_event(ROOM, n) for n in numbers]

    async def txn(conn: asyncpg.Connection) -> EventWrites:
        writes = EventWrites()
        for n in new:
            pdu = json.loads(n.stored.json)
            event = PersistedEvent(n.stored.event_id, pdu, n.stored.depth, n.stored, None)
            writes.events.append(n)
            await sender.on_event(conn, event, {}, members, writes)
        await writes.flush(conn, ROOM, [])
        return writes

    sender.committed(await db.transaction(txn))


async def state_of(db: Database, destination: str) -> DestinationState | None:
    async with db.connection() as conn:
        return (await outbox.get_destination_states(conn, [destination])).get(destination)


async def failures(db: Database, destination: str) -> int:
    state = await state_of(db, destination)
    return 0 if state is None else state.failures


def members_with(*destinations: Destination) -> set[str]:
    return {f"@local:{ORIGIN}", *(f"@u:{d.name}" for d in destinations)}


async def test_everything_arrives_in_order_one_transaction_at_a_time(
    db: Database, make_sender: Callable[..., FederationSender], peer: Destination,
) -> None:
    sender = make_sender()
    sent, ages = sample(SENT, peer.name), sample(AGES, peer.name)
    queued = sample(QUEUED, peer.name)
    peer.gate.clear()  # hold the first transaction while the EDUs are queued
    await persist(db, sender, range(120), members_with(peer))
    await peer.until(lambda: len(peer.attempts) == 1, "the first transaction")
    for n in range(130):
        await sender.send_edu([peer.name, ORIGIN], "m.typing", {"n": n})
    assert sample(QUEUED, peer.name) == queued + 250
    peer.delay_s = 0.01
    peer.gate.set()

    await peer.until(lambda: len(peer.delivered_edus()) == 130, "every EDU")
    assert [(len(a.body["pdus"]), len(a.body["edus"])) for a in peer.attempts] == [
        (50, 0), (50, 100), (20, 30),
    ]
    assert peer.delivered() == list(range(120))
    assert peer.delivered_edus() == list(range(130))
    assert peer.max_in_flight == 1
    assert len({a.txn_id for a in peer.attempts}) == 3
    for attempt in peer.attempts:
        assert attempt.body["origin"] == ORIGIN
        assert isinstance(attempt.body["origin_server_ts"], int)
        assert {e["edu_type"] for e in attempt.body["edus"]} <= {"m.typing"}

    async def accounted() -> bool:
        return sample(QUEUED, peer.name) == queued and sample(SENT, peer.name) == sent + 3

    await until(accounted, "the sender's metrics")
    assert sample(AGES, peer.name) == ages + 120
    assert sample(BACKOFF, peer.name) == 0
    state = await state_of(db, peer.name)
    assert state is not None and state.failures == 0 and state.last_success_ts is not None


async def test_backoff_grows_while_the_peer_is_down_and_nothing_is_lost(
    db: Database, make_sender: Callable[..., FederationSender], peer: Destination,
) -> None:
    sender = make_sender()
    failed = sample(FAILED, peer.name)
    peer.status = 500
    await persist(db, sender, range(60), members_with(peer))

    async def failed_times(n: int) -> bool:
        return await failures(db, peer.name) >= n

    await until(lambda: failed_times(3), "three stored failures")
    state = await state_of(db, peer.name)
    assert state is not None and state.retry_at is not None
    assert sample(BACKOFF, peer.name) > 0
    first = peer.attempts[0]
    assert [p["content"]["n"] for p in first.body["pdus"]] == list(range(50))
    assert all(a.txn_id == first.txn_id and a.body["pdus"] == first.body["pdus"]
               for a in peer.attempts)

    # Now it is gone altogether (connection refused) while more is queued for it.
    await peer.stand_in.stop()
    down_since = await failures(db, peer.name)
    await persist(db, sender, range(60, 70), members_with(peer))
    await sender.send_edu([peer.name], "m.typing", {"n": 0})
    await until(lambda: failed_times(down_since + 2), "failures while it is down")

    peer.status = 200
    await peer.stand_in.start()  # back on the same port: the retry timer finds it
    await peer.until(lambda: len(peer.delivered()) >= 70, "the catch-up")
    assert peer.delivered() == list(range(70))
    assert peer.delivered_edus() == [0]
    assert peer.accepted()[0].txn_id == first.txn_id
    assert sample(FAILED, peer.name) >= failed + 5

    async def healthy() -> bool:
        state = await state_of(db, peer.name)
        return state is not None and state.failures == 0 and sample(QUEUED, peer.name) == 0

    await until(healthy, "the reset backoff")
    assert sample(BACKOFF, peer.name) == 0


async def test_contact_from_the_peer_ends_its_backoff_at_once(
    db: Database, make_sender: Callable[..., FederationSender], peer: Destination,
) -> None:
    sender = make_sender(backoff=Backoff(base_s=60.0, max_s=300.0))
    peer.status = 500
    await persist(db, sender, [1], members_with(peer))

    async def backing_off() -> bool:
        return await failures(db, peer.name) == 1

    await until(backing_off, "the first failure")
    assert sample(BACKOFF, peer.name) == 60.0
    peer.status = 200
    sender.peer_is_back(peer.name)
    await peer.until(lambda: peer.delivered() == [1], "the retry (60 s away by the timer)")
    assert sample(BACKOFF, peer.name) == 0
    sender.peer_is_back(peer.name)  # a healthy peer: nothing to do


async def test_a_failing_destination_does_not_hold_up_the_others(
    db: Database, make_sender: Callable[..., FederationSender], peer: Destination,
    other_peer: Destination,
) -> None:
    sender = make_sender()
    peer.status = 500
    await persist(db, sender, range(5), members_with(peer, other_peer))
    await other_peer.until(lambda: other_peer.delivered() == list(range(5)), "the healthy one")
    assert peer.delivered() == []
    peer.status = 200
    await peer.until(lambda: peer.delivered() == list(range(5)), "the other one, later")


async def test_a_new_sender_resumes_after_a_crash(
    db: Database, make_sender: Callable[..., FederationSender], peer: Destination,
) -> None:
    crashed = make_sender()
    peer.gate.clear()
    await persist(db, crashed, range(60), members_with(peer))
    await peer.until(lambda: len(peer.attempts) == 1, "a transaction in flight")
    in_flight = peer.attempts[0].txn_id
    # The process dies mid-request: its tasks just vanish, nothing is flushed or stopped.
    for task in asyncio.all_tasks():
        if task.get_name() == f"federation-sender {peer.name}":
            task.cancel()
    # Whatever the peer made of the orphaned request, we never heard its answer.
    peer.statuses = [503]
    peer.gate.set()
    await peer.until(lambda: peer.attempts[0].status is not None, "the orphaned answer")

    resumed = make_sender()
    await resumed.start()
    await peer.until(lambda: len(peer.delivered()) == 60, "the resumed queue")
    assert peer.delivered() == list(range(60))
    # The interrupted batch went again under its txnId, so a peer that did process it
    # would answer from its cache instead of processing it twice.
    assert peer.accepted()[0].txn_id == in_flight


async def test_start_honours_the_stored_retry_time(
    db: Database, make_sender: Callable[..., FederationSender], peer: Destination,
) -> None:
    retry_at = int(time.time() * 1000) + 500

    async def queue(conn: asyncpg.Connection) -> None:
        await outbox.upsert_destination_state(conn, peer.name, DestinationState(4, retry_at, None))
        await outbox.insert_edus(conn, [peer.name], "m.typing", {"n": 1})

    await db.transaction(queue)
    sender = make_sender(backoff=Backoff(max_s=30.0))
    await sender.start()
    assert sample(QUEUED, peer.name) == 1
    await peer.until(lambda: peer.delivered_edus() == [1], "the delivery")
    assert time.time() * 1000 >= retry_at


async def test_a_transaction_refused_for_good_is_dropped_and_the_queue_moves_on(
    db: Database, make_sender: Callable[..., FederationSender], peer: Destination,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sender = make_sender()
    dropped = sample(DROPPED, peer.name)
    peer.statuses = [400]
    peer.errors = {"$e55": "You are not allowed to send a message to this room."}
    await persist(db, sender, range(60), members_with(peer))
    await peer.until(lambda: len(peer.delivered()) == 10, "the batch after the refused one")
    assert [a.status for a in peer.attempts] == [400, 200]
    assert peer.delivered() == list(range(50, 60))

    async def drained() -> bool:
        return sample(QUEUED, peer.name) == 0

    await until(drained, "an empty queue")
    assert sample(DROPPED, peer.name) == dropped + 1
    assert any("refused transaction" in r.message and r.levelname == "ERROR"
               for r in caplog.records)
    # A PDU the peer rejected is logged, not sent again.
    assert any("$e55" in r.message and r.levelname == "WARNING" for r in caplog.records)
    assert len(peer.attempts) == 2


async def test_a_request_from_the_peer_ends_the_backoff_of_a_running_server(
    peers: Peers,
) -> None:
    """The wiring: an authenticated request from a peer reaches the sender of a real Moot."""
    a = await peers.new("a")
    b = await peers.new("b", start=False)  # down: A's transactions to it fail
    sender = a.federation.outbound.sender
    # An hour's backoff from the first failure: only the contact can explain a retry, however
    # slowly the machine starts B.
    sender.backoff = Backoff(base_s=3600.0, max_s=3600.0)
    await sender.send_edu([b.name], "m.typing", {"room_id": "!r:x", "user_id": "@u:x"})
    assert a.hs is not None and a.hs.db is not None
    db = a.hs.db

    async def backing_off() -> bool:
        return await failures(db, b.name) >= 1

    await until(backing_off, "A backing off from B")
    state = await state_of(db, b.name)
    assert state is not None and state.retry_at is not None
    await b.start()
    with contextlib.suppress(HttpResponseError):  # no such user: it was authenticated first
        await b.federation.outbound.client.get_json(
            a.name, "/_matrix/federation/v1/query/profile", {"user_id": f"@nobody:{a.name}"}
        )

    async def retried() -> bool:
        return (await state_of(db, b.name)) != state

    await until(retried, "A retrying B")
    # Before the stored retry time: the contact, not the timer, made it try again.
    assert time.time() * 1000 < state.retry_at


async def test_a_server_whose_config_is_silent_on_it_caps_the_outbox_backoff_at_5_minutes(
    make_homeserver: MakeServer,
) -> None:
    """The cap production gets from a config that does not set it (no key can): a peer back
    from an outage that sends us nothing waits at most five minutes for its backlog (see
    federation/backoff.py). Pinned, so that a change to it is deliberate."""
    server = await make_homeserver()
    assert server.hs.federation is not None
    assert server.hs.federation.outbound.sender.backoff.max_s == 300.0
