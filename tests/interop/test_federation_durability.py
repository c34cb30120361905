"""Federation durability: a server killed with SIGKILL loses nothing it acknowledged, and every
acknowledged event reaches every server once it is back.

`test_the_restarted_servers_outbox_delivers_what_it_queued_before_the_kill` proves that the
outbound queue survives a crash: A's events are queued for B while B is down, A is killed, and
after both restart B can get those events only from A's own queue (there is no third server, and
A sends nothing new that B could chase with /get_missing_events). With a queue wiped at start it
fails.

`test_a_server_killed_mid_stream_catches_up_and_loses_nothing` is the busy case with three
servers sharing a public room created on A: A runs in-process, B and C are real subprocesses. A
user on each server sends messages; C is stopped (SIGSTOP) for a moment so that B's transactions
to it hang, then B is SIGKILLed with acknowledged events still in its outbound queue, kept down
while A and C go on sending (their queues to B back off), and restarted on the same config,
database and federation port; B's user retries its interrupted send under the same transaction
ID and sends the rest. Afterwards every message answered with 200 on any server is in the room's
history on every server exactly once, and every outbound queue is empty. C may get B's queued
events from A, or chase them from B's later events, so this one passes even without B's queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import asyncpg
import pytest

from tests.conftest import throwaway_database
from tests.federation_helpers import free_port
from tests.federation_peers import Peers
from tests.helpers import MatrixApi, User
from tests.interop.conftest import ServerProcess, SpawnServer

MESSAGES = 30  # per sender
PACE_S = 0.1  # between one sender's messages, so that the kill lands mid-stream
B_ACKS_BEFORE_STALL = 5  # C is stopped from here to the kill
B_ACKS_BEFORE_KILL = 10
DOWN_S = 3.0  # how long B stays dead while A and C keep sending
CONVERGE_DEADLINE_S = 30.0
QUEUED_MESSAGES = 10  # A's, sent while B is down and still queued when A is killed
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30)


@dataclass
class Site:
    """One server of the test as its user sees it: a client API, the user, the database."""

    label: str
    url: str
    database_url: str
    user: User | None = None

    def api(self, http: aiohttp.ClientSession) -> MatrixApi:
        return MatrixApi(self.url, http)


@dataclass
class Ledger:
    """What the senders saw: every acknowledged event, and when it was acknowledged."""

    acked: dict[str, str] = field(default_factory=dict)  # event ID -> body
    acked_by: dict[str, set[str]] = field(default_factory=dict)  # site label -> event IDs
    while_b_down: set[str] = field(default_factory=set)  # A's and C's, acked while B was dead
    b_up: asyncio.Event = field(default_factory=asyncio.Event)
    b_stall: asyncio.Event = field(default_factory=asyncio.Event)
    b_enough: asyncio.Event = field(default_factory=asyncio.Event)
    b_retries: int = 0  # sends of B's that never got an answer and were sent again

    def ack(self, site: Site, event_id: str, body: str) -> None:
        assert event_id not in self.acked, f"{event_id} acknowledged twice"
        self.acked[event_id] = body
        self.acked_by.setdefault(site.label, set()).add(event_id)
        if site.label != "b" and not self.b_up.is_set():
            self.while_b_down.add(event_id)


async def send_all(site: Site, room_id: str, ledger: Ledger) -> None:
    """Send MESSAGES messages; a send with no answer (B was killed) is sent again under the
    same transaction ID once B is back, as a client does."""
    assert site.user is not None
    async with aiohttp.ClientSession(timeout=REQUEST_TIMEOUT) as http:
        for i in range(MESSAGES):
            txn, body = f"fd-{site.label}-{i}", f"{site.label} message {i}"
            while True:
                try:
                    status, resp = await site.api(http).request(
                        "PUT", f"rooms/{quote(room_id)}/send/m.room.message/{txn}",
                        json={"msgtype": "m.text", "body": body}, token=site.user.token,
                    )
                    break
                except (TimeoutError, aiohttp.ClientError):
                    assert site.label == "b", f"{site.label}'s send {i} failed"
                    ledger.b_retries += 1
                    await ledger.b_up.wait()
            assert status == 200, (site.label, i, status, resp)
            ledger.ack(site, resp["event_id"], body)
            if site.label == "b":
                if len(ledger.acked_by["b"]) >= B_ACKS_BEFORE_STALL:
                    ledger.b_stall.set()
                if len(ledger.acked_by["b"]) >= B_ACKS_BEFORE_KILL:
                    ledger.b_enough.set()
            await asyncio.sleep(PACE_S)


async def room_messages(api: MatrixApi, user: User, room_id: str) -> list[dict[str, Any]]:
    """Every m.room.message of the room, paginating /messages backwards to its start."""
    events: list[dict[str, Any]] = []
    params = {"dir": "b", "limit": "100"}
    while True:
        page = await api.ok(
            "GET", f"rooms/{quote(room_id)}/messages", token=user.token, params=params
        )
        events += [e for e in page["chunk"] if e["type"] == "m.room.message"]
        if not page["chunk"] or "end" not in page:
            return events
        params = {**params, "from": page["end"]}


async def history(site: Site, room_id: str) -> list[str]:
    """The event IDs of the room's messages on `site`, as its user sees them."""
    assert site.user is not None
    async with aiohttp.ClientSession(timeout=REQUEST_TIMEOUT) as http:
        return [e["event_id"] for e in await room_messages(site.api(http), site.user, room_id)]


async def queued_pdus(site: Site) -> int:
    conn = await asyncpg.connect(site.database_url)
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM federation_outbox_pdus")
        return count
    finally:
        await conn.close()


async def converged(sites: list[Site], room_id: str, ledger: Ledger) -> bool:
    """Every acknowledged event is in every server's history and every queue is drained; a
    duplicate anywhere fails at once rather than wait for the deadline."""
    for site in sites:
        ids = await history(site, room_id)
        assert len(ids) == len(set(ids)), f"an event appears twice on {site.label}"
        if not set(ledger.acked) <= set(ids):
            return False
    return all([await queued_pdus(site) == 0 for site in sites])


async def arrival(site: Site, room_id: str, event_ids: set[str], since: float) -> float:
    """Seconds from `since` until every one of `event_ids` is in `site`'s history."""
    deadline = time.monotonic() + CONVERGE_DEADLINE_S
    while not event_ids <= set(await history(site, room_id)):
        assert time.monotonic() < deadline, f"{site.label} still lacks events"
        await asyncio.sleep(0.1)
    return time.monotonic() - since


@pytest.fixture
async def databases(postgres_dsn: str) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """Factory of throwaway databases, dropped after the servers using them have stopped."""
    async with contextlib.AsyncExitStack() as stack:
        async def new() -> str:
            return await stack.enter_async_context(throwaway_database(postgres_dsn))

        yield new


async def spawn_peer(
    spawn_server: SpawnServer, database_url: str, data_dir: Path
) -> ServerProcess:
    """A subprocess named after a federation port fixed now, so that a restart keeps both."""
    port = free_port()
    return await spawn_server(database_url, data_dir=data_dir, overrides={
        "server.server_name": f"127.0.0.1:{port}",
        "listeners.federation.port": port,
        "federation.verify_certificates": False,
        "federation.allow_private_addresses": True,
    })


async def undelivered(site: Site, event_ids: set[str]) -> set[str]:
    """Which of `event_ids` still wait in `site`'s outbound queue."""
    conn = await asyncpg.connect(site.database_url)
    try:
        rows = await conn.fetch("SELECT event_id FROM federation_outbox_pdus")
        return event_ids & {r["event_id"] for r in rows}
    finally:
        await conn.close()


async def test_a_server_killed_mid_stream_catches_up_and_loses_nothing(
    databases: Callable[[], Awaitable[str]], peers: Peers, spawn_server: SpawnServer,
    tmp_path: Path,
) -> None:
    a = await peers.new("a")
    b_database, c_database = await databases(), await databases()
    b = await spawn_peer(spawn_server, b_database, tmp_path / "b")
    c = await spawn_peer(spawn_server, c_database, tmp_path / "c")
    assert b.proc is not None and c.proc is not None
    sites = [
        Site("a", a.client_url, a.database_url),
        Site("b", b.url, b_database),
        Site("c", c.url, c_database),
    ]
    async with aiohttp.ClientSession(timeout=REQUEST_TIMEOUT) as http:
        users = [await site.api(http).register(f"user{site.label}") for site in sites]
        for site, user in zip(sites, users, strict=True):
            site.user = user
        room_id = await sites[0].api(http).create_room(users[0], preset="public_chat")
        for site, user in zip(sites[1:], users[1:], strict=True):
            await site.api(http).ok(
                "POST", f"join/{quote(room_id)}", token=user.token, json={},
                params={"via": a.name},
            )

    ledger = Ledger()
    ledger.b_up.set()
    senders = [asyncio.create_task(send_all(site, room_id, ledger)) for site in sites]
    # C stalls (SIGSTOP) for B's last sends before the kill, so that B dies with events it
    # acknowledged still in its outbound queue rather than delivered already.
    await asyncio.wait_for(ledger.b_stall.wait(), timeout=30)
    c.proc.send_signal(signal.SIGSTOP)
    try:
        await asyncio.wait_for(ledger.b_enough.wait(), timeout=30)
        await b.kill()
    finally:
        c.proc.send_signal(signal.SIGCONT)
    ledger.b_up.clear()
    killed_at = time.monotonic()
    b_acked_before_kill = set(ledger.acked_by["b"])
    queued_at_kill = await undelivered(sites[1], b_acked_before_kill)
    assert queued_at_kill, "B should die with acknowledged events not yet sent to C"
    await asyncio.sleep(DOWN_S)
    await b.start()
    back_at = time.monotonic()
    ledger.b_up.set()
    # How long the catch-up takes while B's user goes on sending: A's and C's queues to B
    # (backing off since the kill) and B's events that C lacked at the kill (B's resumed
    # queue sends them, unless C filled the gap from A first; the queue must drain either way).
    b_caught_up, c_caught_up = await asyncio.gather(
        arrival(sites[1], room_id, set(ledger.while_b_down), back_at),
        arrival(sites[2], room_id, queued_at_kill, back_at),
    )
    await asyncio.gather(*senders)
    sent_at = time.monotonic()

    assert len(ledger.acked) == 3 * MESSAGES
    for label in "ac":
        assert ledger.while_b_down & ledger.acked_by[label], f"{label} sent nothing with B down"
    deadline = time.monotonic() + CONVERGE_DEADLINE_S
    while not await converged(sites, room_id, ledger):
        assert time.monotonic() < deadline, (
            f"not converged {CONVERGE_DEADLINE_S} s after the last send:\n{b.log_tail()}"
        )
        await asyncio.sleep(0.2)
    done_at = time.monotonic()

    # The same messages everywhere (so B's acknowledged before the kill and A's and C's sent
    # while B was down too), and nothing more: a retried send made no second event.
    for site in sites:
        assert set(await history(site, room_id)) == set(ledger.acked), site.label
    print(
        f"\nB down {back_at - killed_at:.1f} s, killed after {len(b_acked_before_kill)} acks"
        f" ({len(queued_at_kill)} still queued for C); {len(ledger.while_b_down)} A/C acks while"
        f" down, all on B {b_caught_up:.1f} s after restart; B's queued ones on C after"
        f" {c_caught_up:.1f} s; {ledger.b_retries} B retries; last send"
        f" {sent_at - back_at:.1f} s and convergence {done_at - back_at:.1f} s after restart"
    )



async def test_the_restarted_servers_outbox_delivers_what_it_queued_before_the_kill(
    databases: Callable[[], Awaitable[str]], spawn_server: SpawnServer, tmp_path: Path,
) -> None:
    a_database, b_database = await databases(), await databases()
    a = await spawn_peer(spawn_server, a_database, tmp_path / "a")
    b = await spawn_peer(spawn_server, b_database, tmp_path / "b")
    site_a, site_b = Site("a", a.url, a_database), Site("b", b.url, b_database)
    async with aiohttp.ClientSession(timeout=REQUEST_TIMEOUT) as http:
        user_a = site_a.user = await site_a.api(http).register("usera")
        user_b = site_b.user = await site_b.api(http).register("userb")
        room_id = await site_a.api(http).create_room(user_a, preset="public_chat")
        await site_b.api(http).ok(
            "POST", f"join/{quote(room_id)}", token=user_b.token, json={},
            params={"via": user_a.user_id.split(":", 1)[1]},
        )
        await b.stop()  # B is down: A can only queue what its user sends
        acked = {
            await site_a.api(http).send_message(user_a, room_id, f"queued {i}")
            for i in range(QUEUED_MESSAGES)
        }
    assert await undelivered(site_a, acked) == acked, "B is down: all should wait in A's queue"
    await a.kill()
    await b.start()
    await a.start()
    # Nobody sends after the restart, so B has no later event of A's to chase the gap from.
    await arrival(site_b, room_id, acked, time.monotonic())
    assert set(await history(site_b, room_id)) == acked  # and nothing A never sent
    assert await queued_pdus(site_a) == 0
