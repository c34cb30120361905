"""Durability: nothing acknowledged is lost when the server and PostgreSQL die together.

The server runs on its own embedded PostgreSQL cluster in the test's directory (never the
machine's shared one). Several senders each keep a send outstanding, without pause. At the
acknowledgement that completes ACKS_PER_ROUND while at least IN_FLIGHT_AT_KILL other sends await
their answer, the server process and every process of the cluster get SIGKILL in one synchronous
step: an observable condition, not a sleep, decides the moment. The server is restarted and
starts the cluster, which recovers from the crash. Then the room must hold every acknowledged
event under the event ID its client was given, and nothing that no client sent; a send the kill
left unanswered may or may not be there. Clients retry those under the same transaction IDs,
as real clients do, and nothing is stored twice.

The check can fail: the second test makes the cluster acknowledge commits whose WAL is still in
PostgreSQL's memory (synchronous_commit=off, and a WAL writer that waits 10 s and 64 MB before
it writes) and requires the same check to report lost events. It sees a loss at the first kill:
    round 1: 32 acknowledged (7 more in flight at the kill), 32 of them lost
(with synchronous_commit=off alone, the WAL writer waking every 200 ms, a manual run lost 8 of
32). The check of the other direction was seen to fail once too, by a message sent around the
ledger before it.

What these tests cannot see: fsync=off (or a disk that acknowledges flushes it has not made)
loses data only when the operating system crashes or the machine loses power. Killing processes
leaves the kernel's page cache, and with it every write() PostgreSQL made, intact; an OS crash
is beyond what these tests can simulate.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.helpers import MatrixApi, User
from tests.interop.conftest import ServerProcess, SpawnServer, signal_postmaster
from tests.interop.postgres_cluster import checkpoint, died, kill_cluster, make_cluster

SENDERS_PER_USER = 4
ACKS_PER_ROUND = 30
IN_FLIGHT_AT_KILL = 4  # other sends awaiting their answer at the acknowledgement that kills
KILL_DEADLINE_S = 60.0
# Commits acknowledged from WAL that is still in PostgreSQL's shared memory: the WAL writer
# wakes every 10 s or after 64 MB, and the WAL buffers hold 64 MB before a backend must write.
COMMITS_IN_MEMORY = {
    "synchronous_commit": "off", "wal_writer_delay": "10s",
    "wal_writer_flush_after": "64MB", "wal_buffers": "64MB",
}
LOSS_ROUNDS = 3  # kills before the loss test gives up on seeing a loss


@dataclass(frozen=True)
class Send:
    user: User
    txn: str


@dataclass
class Ledger:
    """What the clients saw over every round: each send made (its body is unique), the event ID
    of each answered 200, and which never got an answer. A round arms `kill`, which the
    acknowledgement meeting the condition calls at once."""

    sent: dict[str, Send] = field(default_factory=dict)  # body -> how it was sent
    acked: dict[str, str] = field(default_factory=dict)  # body -> event ID
    unanswered: set[str] = field(default_factory=set)  # bodies
    kill: Callable[[], None] | None = None
    acks_due: int = 0
    in_flight_at_kill: int = 0

    def arm(self, kill: Callable[[], None]) -> None:
        self.kill, self.acks_due = kill, ACKS_PER_ROUND

    def start(self, body: str, send: Send) -> None:
        self.sent[body] = send
        self.unanswered.add(body)

    def answer(self, body: str, event_id: str) -> None:
        self.unanswered.remove(body)
        self.acked[body] = event_id
        self.acks_due -= 1
        if self.kill and self.acks_due <= 0 and len(self.unanswered) >= IN_FLIGHT_AT_KILL:
            kill, self.kill = self.kill, None
            self.in_flight_at_kill = len(self.unanswered)
            kill()


@dataclass(frozen=True)
class Findings:
    """How the room differs from the ledger: acknowledged event IDs it lacks, and event IDs of
    messages no client sent or that store one send a second time."""

    lost: set[str]
    unexpected: list[str]


def compare(ledger: Ledger, events: list[dict[str, Any]]) -> Findings:
    ids = {e["event_id"] for e in events}
    seen: set[str] = set()
    unexpected = []
    for e in events:
        body = e["content"].get("body")
        if body not in ledger.sent or body in seen or (
            ledger.acked.get(body, e["event_id"]) != e["event_id"]
        ):
            unexpected.append(e["event_id"])
        seen.add(body)
    return Findings(set(ledger.acked.values()) - ids, unexpected)


async def send(api: MatrixApi, user: User, room_id: str, txn: str, body: str) -> tuple[int, str]:
    status, resp = await api.request(
        "PUT", f"rooms/{room_id}/send/m.room.message/{txn}",
        json={"msgtype": "m.text", "body": body}, token=user.token,
    )
    return status, resp.get("event_id", "") if isinstance(resp, dict) else ""


async def sender(api: MatrixApi, user: User, room_id: str, name: str, ledger: Ledger) -> None:
    """Send until the connection fails (the server was killed), recording every answer."""
    for i in itertools.count():
        body, txn = f"{name} message {i}", f"dur-{name}-{i}"
        ledger.start(body, Send(user, txn))
        try:
            status, event_id = await send(api, user, room_id, txn, body)
        except (TimeoutError, aiohttp.ClientError):
            return
        assert status == 200 and event_id, (status, event_id)
        ledger.answer(body, event_id)


async def all_messages(api: MatrixApi, user: User, room_id: str) -> list[dict[str, Any]]:
    """Every m.room.message of the room, oldest first, paginating /messages backwards."""
    events: list[dict[str, Any]] = []
    params = {"dir": "b", "limit": "100"}
    while True:
        page = await api.ok("GET", f"rooms/{room_id}/messages", token=user.token, params=params)
        events += [e for e in page["chunk"] if e["type"] == "m.room.message"]
        if not page["chunk"] or "end" not in page:
            return events[::-1]
        params = {**params, "from": page["end"]}


@dataclass
class Site:
    """The server under test, its cluster's directory, and the room its users send to."""

    server: ServerProcess
    cluster_dir: Path
    users: list[User]
    room_id: str

    async def messages(self) -> list[dict[str, Any]]:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            return await all_messages(MatrixApi(self.server.url, session), self.users[0],
                                      self.room_id)


async def open_site(
    spawn_server: SpawnServer, data_dir: Path, settings: Mapping[str, str]
) -> Site:
    """A server on a new embedded cluster made with `settings`, two users and their room, all
    made durable before any kill."""
    await make_cluster(data_dir / "postgres", settings)
    server = await spawn_server(None, data_dir=data_dir)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        api = MatrixApi(server.url, session)
        users = [await api.register(name) for name in ("alice", "bob")]
        room_id = await api.create_room(users[0], preset="public_chat")
        await api.join(users[1], room_id)
    await checkpoint(data_dir / "postgres")
    return Site(server, data_dir / "postgres", users, room_id)


async def kill_mid_stream(site: Site, ledger: Ledger, round_no: int) -> None:
    """One round: senders run until the kill; then the server is started again (and starts
    its cluster, which runs crash recovery)."""
    proc = site.server.proc
    assert proc is not None
    pidfds: list[int] = []  # of the cluster's processes, once killed

    def kill() -> None:
        proc.kill()
        pidfds.extend(kill_cluster(site.cluster_dir))

    ledger.arm(kill)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        api = MatrixApi(site.server.url, session)
        tasks = [  # sender names go into transaction IDs, so they stay URL-safe
            asyncio.create_task(sender(api, user, site.room_id, f"r{round_no}{user.user_id[1]}{n}",
                                       ledger))
            for user in site.users for n in range(SENDERS_PER_USER)
        ]
        try:  # a sender ends when the kill cuts its connection, or fails the test at once
            await asyncio.wait_for(asyncio.gather(*tasks), KILL_DEADLINE_S)
        finally:
            ledger.kill = None
    assert pidfds, "the senders stopped before the kill"
    assert len(pidfds) > 1, "the kill found no process of the cluster but its postmaster"
    await proc.wait()
    await died(pidfds)
    await site.server.start()


async def retry_unanswered(site: Site, ledger: Ledger) -> None:
    """Clients retry each send the kill left unanswered, under its transaction ID; a retried
    acknowledged send answers the event it already made."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        api = MatrixApi(site.server.url, session)
        for body in sorted(ledger.unanswered):
            s = ledger.sent[body]
            status, event_id = await send(api, s.user, site.room_id, s.txn, body)
            assert status == 200
            ledger.acked[body] = event_id
        body, event_id = next(iter(ledger.acked.items()))
        s = ledger.sent[body]
        assert await send(api, s.user, site.room_id, s.txn, body) == (200, event_id)


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A data directory the embedded PostgreSQL's unprivileged user can reach (tmp_path is 0700)."""
    with tempfile.TemporaryDirectory(prefix="moot-dur-", ignore_cleanup_errors=True) as name:
        Path(name).chmod(0o755)
        yield Path(name)
        # A cluster left running by a test that failed before its server stopped it.
        signal_postmaster(Path(name) / "data" / "postgres", signal.SIGINT)


async def test_acknowledged_sends_survive_killing_server_and_postgres(
    open_dir: Path, spawn_server: SpawnServer
) -> None:
    site = await open_site(spawn_server, open_dir / "data", {})
    ledger = Ledger()
    await kill_mid_stream(site, ledger, 1)
    assert ledger.in_flight_at_kill >= IN_FLIGHT_AT_KILL
    assert ledger.unanswered, "the kill should leave sends unanswered"

    assert compare(ledger, await site.messages()) == Findings(lost=set(), unexpected=[])
    await retry_unanswered(site, ledger)
    # Every send once, under the event ID its client was given.
    events = await site.messages()
    assert compare(ledger, events) == Findings(lost=set(), unexpected=[])
    assert {e["content"]["body"] for e in events} == set(ledger.sent)


async def test_the_check_notices_commits_lost_with_synchronous_commit_off(
    open_dir: Path, spawn_server: SpawnServer
) -> None:
    site = await open_site(spawn_server, open_dir / "data", COMMITS_IN_MEMORY)
    ledger = Ledger()
    for round_no in range(1, LOSS_ROUNDS + 1):
        acked_before = len(ledger.acked)
        await kill_mid_stream(site, ledger, round_no)
        findings = compare(ledger, await site.messages())
        print(f"round {round_no}: {len(ledger.acked) - acked_before} acknowledged"
              f" ({ledger.in_flight_at_kill} more in flight at the kill),"
              f" {len(findings.lost)} of them lost")
        assert not findings.unexpected
        if findings.lost:
            return
    raise AssertionError(f"no acknowledged event lost in {LOSS_ROUNDS} kills")
