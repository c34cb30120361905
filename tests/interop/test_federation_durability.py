"""Federation durability: a server killed with SIGKILL mid-stream loses nothing any server
acknowledged, and every acknowledged event reaches every server once it is back.

Three servers share a public room created on A: A and C run in-process, B is a real
subprocess that is SIGKILLed while a user on each server sends messages, kept down while A and
C go on sending (their outbound queues to B back off), and restarted on the same config,
database and federation port; B's user then retries its interrupted send under the same
transaction ID and sends the rest. Afterwards every message answered with 200 on any server is
in the room's history on every server exactly once, and every outbound queue is empty.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
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
B_ACKS_BEFORE_KILL = 10
DOWN_S = 12.0  # how long B stays dead while A and C keep sending
CONVERGE_DEADLINE_S = 30.0
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
            if site.label == "b" and len(ledger.acked_by["b"]) >= B_ACKS_BEFORE_KILL:
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


@pytest.fixture
async def b_database(postgres_dsn: str) -> AsyncIterator[str]:
    async with throwaway_database(postgres_dsn) as url:
        yield url


async def start_b(spawn_server: SpawnServer, database_url: str, data_dir: Path) -> ServerProcess:
    """B as a subprocess named after a federation port fixed now, so a restart keeps both."""
    port = free_port()
    return await spawn_server(database_url, data_dir=data_dir, overrides={
        "server.server_name": f"127.0.0.1:{port}",
        "listeners.federation.port": port,
        "federation.verify_certificates": False,
        "federation.allow_private_addresses": True,
    })


async def test_a_server_killed_mid_stream_catches_up_and_loses_nothing(
    b_database: str, peers: Peers, spawn_server: SpawnServer, tmp_path: Path
) -> None:
    a, c = await peers.new("a"), await peers.new("c")
    b = await start_b(spawn_server, b_database, tmp_path / "b")
    sites = [
        Site("a", a.client_url, a.database_url),
        Site("b", b.url, b_database),
        Site("c", c.client_url, c.database_url),
    ]
    async with aiohttp.ClientSession(timeout=REQUEST_TIMEOUT) as http:
        for site in sites:
            site.user = await site.api(http).register(f"user{site.label}")
        room_id = await sites[0].api(http).create_room(sites[0].user, preset="public_chat")
        for site in sites[1:]:
            await site.api(http).ok(
                "POST", f"join/{quote(room_id)}", token=site.user.token, json={},
                params={"via": a.name},
            )

    ledger = Ledger()
    ledger.b_up.set()
    senders = [asyncio.create_task(send_all(site, room_id, ledger)) for site in sites]
    await asyncio.wait_for(ledger.b_enough.wait(), timeout=30)
    await b.kill()
    ledger.b_up.clear()
    killed_at = time.monotonic()
    b_acked_before_kill = set(ledger.acked_by["b"])
    await asyncio.sleep(DOWN_S)
    await b.start()
    back_at = time.monotonic()
    ledger.b_up.set()
    await asyncio.gather(*senders)
    sent_at = time.monotonic()

    assert len(ledger.acked) == 3 * MESSAGES
    assert ledger.while_b_down, "A and C should have sent while B was down"
    deadline = time.monotonic() + CONVERGE_DEADLINE_S
    while not await converged(sites, room_id, ledger):
        assert time.monotonic() < deadline, (
            f"not converged {CONVERGE_DEADLINE_S} s after the last send:\n{b.log_tail()}"
        )
        await asyncio.sleep(0.2)
    done_at = time.monotonic()

    for site in sites:  # the same messages everywhere, nothing extra (no duplicated retry)
        ids = await history(site, room_id)
        assert set(ids) == set(ledger.acked), site.label
        assert b_acked_before_kill <= set(ids) and ledger.while_b_down <= set(ids)
    print(
        f"\nB down {back_at - killed_at:.1f} s (killed after {len(b_acked_before_kill)} of its"
        f" acks; {len(ledger.while_b_down)} A/C acks while down; {ledger.b_retries} B retries);"
        f" last send {sent_at - back_at:.1f} s after restart; converged {done_at - back_at:.1f} s"
        f" after restart, {done_at - sent_at:.1f} s after the last send"
    )
