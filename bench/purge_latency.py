"""Send latency while an admin history purge runs on the same room (issue 20's measurement).

Theory of operation: an admin (made by the caller with `register-user --admin`) logs in,
creates a public room (unencrypted, as in load.py) that a second, freshly registered user
joins, and loads it with `--messages` old messages, `--concurrency` in flight. The second user
then long-polls `/sync` on the room, so every send goes through the fan-out path, while the
admin sends `--sends` messages one at a time: the baseline latencies. Then the admin asks for a
purge of everything sent before now (`POST /_synapse/admin/v1/purge_history/{roomId}` with
`delete_local_events`) and goes on sending one message at a time until
`purge_history_status` says the purge is over: the latencies during the purge, which waits for
the room's writer lock batch by batch as the sends do. The room's stored events are counted in
the database before and after, and the server process's CPU time (utime + stime from /proc) is
read around each phase (PostgreSQL's own CPU is not in it).

One JSON line per phase and a final comparison line go to stdout; progress to stderr. It only
measures: the exit status says whether the run completed. Loopback servers only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import asyncpg
from load import (
    PASSWORD,
    SYNC_TIMEOUT_MS,
    BenchError,
    Client,
    Receiver,
    SendResult,
    SyncFeed,
    User,
    bounded,
    receive,
    register,
    require_loopback,
    send_one,
    spread,
)

ADMIN_PREFIX = "/_synapse/admin/v1"
STATUS_POLL_S = 0.1
TARGET_RATIO = 2.0  # the bound on the p99 during a purge over the p99 without
COUNT_EVENTS = "SELECT count(*) FROM events WHERE room_id = $1"


def cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of the process so far, from /proc/PID/stat; None without a PID."""
    if pid is None:
        return None
    with open(f"/proc/{pid}/stat") as stat:
        # The command name may hold spaces: fields are counted after its closing parenthesis,
        # where utime and stime are the 12th and 13th.
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(slots=True)
class Phase:
    """Wall time and server CPU time of one phase, as a JSON line's common fields."""

    name: str
    pid: int | None
    started: float = 0.0
    cpu_started: float | None = None

    def __post_init__(self) -> None:
        self.started = time.monotonic()
        self.cpu_started = cpu_seconds(self.pid)
        log(f"phase {self.name}")

    def report(self, **figures: Any) -> dict[str, Any]:
        wall = time.monotonic() - self.started
        cpu = cpu_seconds(self.pid)
        used = None if cpu is None or self.cpu_started is None else cpu - self.cpu_started
        out = {
            "phase": self.name, "wall_s": round(wall, 2),
            "server_cpu_s": None if used is None else round(used, 2),
            "server_cpu_pct": None if used is None else round(100 * used / wall, 1),
            **figures,
        }
        print(json.dumps(out), flush=True)
        return out


def sends_report(result: SendResult) -> dict[str, Any]:
    return {**spread(result.latencies_ms), "errors": result.errors,
            "first_error": result.first_error}


async def login(client: Client, localpart: str, password: str) -> User:
    reply, _ = await client.setup_call("POST", "/login", body={
        "type": "m.login.password", "password": password,
        "identifier": {"type": "m.id.user", "user": localpart},
    })
    return User(reply["user_id"], reply["access_token"])


@asynccontextmanager
async def long_polling(client: Client, user: User, room_id: str) -> AsyncIterator[Receiver]:
    """`user` long-polls /sync on the room for as long as the block runs."""
    feed = SyncFeed(room_id, timeline_limit=100)
    since = await feed.start(client, user)
    state = Receiver()
    task = asyncio.create_task(receive(client, user, feed, since, state, asyncio.Event()))
    try:
        yield state
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def purge(
    client: Client, admin: User, room_id: str, count: Callable[[], Awaitable[int]],
    phase: Phase,
) -> dict[str, Any]:
    """Purge the room's history up to now while sending one message at a time."""
    before = await count()
    started = time.monotonic()
    up_to_ts = int(time.time() * 1000)
    reply, _ = await client.setup_call(
        "POST", f"{ADMIN_PREFIX}/purge_history/{quote(room_id, safe='')}", admin.token,
        {"purge_up_to_ts": up_to_ts, "delete_local_events": True},
    )
    status_path = f"{ADMIN_PREFIX}/purge_history_status/{quote(reply['purge_id'], safe='')}"
    finished = asyncio.Event()
    sends = SendResult()

    async def send_until_finished() -> None:
        index = 0
        while not finished.is_set():
            await send_one(client, admin, room_id, f"during-{index}", sends)
            index += 1

    sending = asyncio.create_task(send_until_finished())
    while True:
        status, _ = await client.setup_call("GET", status_path, admin.token)
        if status.get("status") != "active":
            break
        await asyncio.sleep(STATUS_POLL_S)
    purge_s = time.monotonic() - started
    finished.set()
    await sending
    after = await count()
    return phase.report(
        purge_status=status, purge_s=round(purge_s, 2), events_before=before,
        events_after=after, deleted=before - (after - len(sends.sent)),
        sends=sends_report(sends),
    )


async def run(args: argparse.Namespace) -> str:
    require_loopback(args.url)
    limit = args.concurrency + 8
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit)
    timeout = aiohttp.ClientTimeout(total=SYNC_TIMEOUT_MS / 1000 + 60)
    database = await asyncpg.connect(args.database_url)
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            client = Client(session, args.url)
            admin = await login(client, args.admin, args.password)
            reader = await register(client, f"reader{os.getpid()}")
            created, _ = await client.setup_call(
                "POST", "/createRoom", admin.token, {"preset": "public_chat", "name": "purge"},
            )
            room_id = str(created["room_id"])
            await client.setup_call("POST", f"/join/{quote(room_id, safe='')}", reader.token, {})

            async def count() -> int:
                return int(await database.fetchval(COUNT_EVENTS, room_id))

            phase = Phase("load", args.pid)
            loaded = SendResult()
            await bounded(args.concurrency, [
                send_one(client, admin, room_id, f"old-{i}", loaded)
                for i in range(args.messages)
            ])
            wall = time.monotonic() - phase.started
            phase.report(
                messages=len(loaded.sent), msgs_per_s=round(len(loaded.sent) / wall, 1),
                errors=loaded.errors, first_error=loaded.first_error, events=await count(),
            )
            async with long_polling(client, reader, room_id) as received:
                phase = Phase("baseline", args.pid)
                baseline = SendResult()
                for i in range(args.sends):
                    await send_one(client, admin, room_id, f"baseline-{i}", baseline)
                phase.report(sends=sends_report(baseline), syncs=received.syncs)
                during = await purge(client, admin, room_id, count, Phase("purge", args.pid))
    finally:
        await database.close()
    without, with_ = spread(baseline.latencies_ms)["p99_ms"], during["sends"]["p99_ms"]
    if not without or with_ is None:
        return "sends during purge: no samples to compare"
    return (
        f"sends during purge: p99 {with_} ms vs {without} ms without "
        f"(ratio {with_ / without:.2f}; target <= {TARGET_RATIO:g}x)"
    )


def log(message: str) -> None:
    print(f"[purge {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="client API base URL, e.g. http://127.0.0.1:8008")
    parser.add_argument("--database-url", required=True,
                        help="the server's database, to count the room's events")
    parser.add_argument("--admin", required=True, help="a server admin's localpart")
    parser.add_argument("--password", default=PASSWORD, help="the admin's password")
    parser.add_argument("--pid", type=int, default=None, help="server process to read CPU of")
    parser.add_argument("--messages", type=int, default=20_000, help="old messages to purge")
    parser.add_argument("--concurrency", type=int, default=16, help="loading sends in flight")
    parser.add_argument("--sends", type=int, default=500, help="baseline sequential sends")
    parser.add_argument("--deadline", type=float, default=1200.0, help="whole run, seconds")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        summary = asyncio.run(asyncio.wait_for(run(args), args.deadline))
    except (BenchError, TimeoutError, aiohttp.ClientError, OSError) as exc:
        print(f"purge_latency.py: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
