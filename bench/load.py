"""Group-chat load against any Matrix homeserver, spec Client-Server API only.

Theory of operation: register `--users` accounts (UIA with the `m.login.dummy` stage), the first
creates a public room (preset `public_chat`, so no server encrypts it by default), the others join
it one request each (timed), `--receivers` of them long-poll `/sync` (or, with `--receive sliding`,
simplified sliding sync) from a position taken before the first message, and `--senders` others send
`--messages` text messages in total. With `--pushers`, the receivers (or every user) first hold
an http pusher to a loopback push gateway the run starts itself (`bench/push_gateway.py`), so
the send rate can be compared with and without push delivery. Every message carries a unique id
and its send start time in its content, so each receiver can tell when it arrived (fan-out
latency) and whether it saw it exactly once (lost, duplicates). The server process's resident
memory is sampled from /proc while the load runs. One JSON object goes to stdout; progress goes
to stderr. It only measures: it asserts nothing and never retries a send.

Only /register, /createRoom, /join, /rooms/{id}/send, /sync (or the sliding sync endpoint that
Synapse and Moot both serve) and /pushers/set are used, so the same run works against Synapse
and Moot. Loopback servers only; everything is bounded by `--deadline`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import aiohttp
from push_gateway import STATS_PATH, pusher_body

CLIENT_PREFIX = "/_matrix/client/v3"
SLIDING_SYNC_PATH = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
PASSWORD = "bench password 1"
SYNC_TIMEOUT_MS = 30_000
RSS_SAMPLE_S = 0.1
SYNC_ERROR_BACKOFF_S = 0.5
GATEWAY_POLL_S = 0.2
GATEWAY_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "push_gateway.py")


class BenchError(Exception):
    """A set-up step (register, create, join) failed: the run cannot measure anything."""


@dataclass(slots=True)
class User:
    user_id: str
    token: str


@dataclass(slots=True)
class Receiver:
    """What one long-polling receiver saw: bench id → arrival count, and bench id → fan-out
    latency of its first arrival (keyed, so a run can split the samples by sender)."""

    seen: dict[str, int] = field(default_factory=dict)
    latencies_ms: dict[str, float] = field(default_factory=dict)
    syncs: int = 0
    limited_syncs: int = 0
    sync_errors: int = 0


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile; None for no samples (a server that delivered nothing)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(len(ordered) * pct / 100))
    return round(ordered[rank - 1], 1)


def spread(values: list[float]) -> dict[str, float | int | None]:
    """p50, p99 and max of latency samples in ms, and how many there were."""
    return {
        "p50_ms": percentile(values, 50), "p99_ms": percentile(values, 99),
        "max_ms": round(max(values), 1) if values else None, "samples": len(values),
    }


class Client:
    """A thin JSON client: every call returns (status, body, elapsed seconds)."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self._root = base_url.rstrip("/")

    async def call(
        self, method: str, path: str, token: str | None = None,
        body: dict[str, Any] | None = None, params: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any], float]:
        """`path` is under the v3 Client-Server prefix unless it is a whole `/_matrix/` (or
        admin API `/_synapse/`) path."""
        whole = path.startswith(("/_matrix/", "/_synapse/"))
        url = self._root + (path if whole else CLIENT_PREFIX + path)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        started = time.monotonic()
        async with self._session.request(
            method, url, json=body, params=params, headers=headers,
        ) as resp:
            raw = await resp.read()
        elapsed = time.monotonic() - started
        try:
            parsed = json.loads(raw) if raw else {}
        except ValueError:
            parsed = {"raw": raw[:200].decode(errors="replace")}
        return resp.status, parsed if isinstance(parsed, dict) else {}, elapsed

    async def setup_call(
        self, method: str, path: str, token: str | None = None, body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> tuple[dict[str, Any], float]:
        """A set-up request that must succeed; waits out a 429 in case a limit was left on."""
        while True:
            status, reply, elapsed = await self.call(method, path, token, body, params)
            if status == 429:
                await asyncio.sleep(reply.get("retry_after_ms", 1000) / 1000)
                continue
            if status != 200:
                raise BenchError(f"{method} {path} -> {status} {reply}")
            return reply, elapsed


async def register(client: Client, localpart: str) -> User:
    """Two-step UIA: the 401 hands out a session, the retry completes the dummy stage."""
    body: dict[str, Any] = {"username": localpart, "password": PASSWORD}
    status, reply, _ = await client.call("POST", "/register", body=body)
    if status != 401 or "session" not in reply:
        raise BenchError(f"register {localpart}: expected a UIA 401, got {status} {reply}")
    body["auth"] = {"type": "m.login.dummy", "session": reply["session"]}
    reply, _ = await client.setup_call("POST", "/register", body=body)
    return User(reply["user_id"], reply["access_token"])


async def bounded(limit: int, jobs: list[Any]) -> list[Any]:
    """Run coroutines with at most `limit` in flight, results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(job: Any) -> Any:
        async with gate:
            return await job

    return list(await asyncio.gather(*(one(job) for job in jobs)))


def sync_filter(room_id: str, timeline_limit: int) -> str:
    return json.dumps({
        "room": {
            "rooms": [room_id],
            "timeline": {"limit": timeline_limit},
            "state": {"lazy_load_members": True},
        },
    })


Timeline = tuple[list[dict[str, Any]], bool]  # the room's new events, and whether there was a gap


class Feed(Protocol):
    """How a receiver long-polls the room: `start` takes the position before the first message,
    `poll` waits for what follows it (status, next position, the room's new timeline)."""

    async def start(self, client: Client, user: User) -> str: ...

    async def poll(self, client: Client, user: User, since: str) -> tuple[int, str, Timeline]: ...


@dataclass(frozen=True, slots=True)
class SyncFeed:
    """`GET /sync` with an inline filter on the room (timeline limit, lazy-loaded members)."""

    room_id: str
    timeline_limit: int

    def _params(self) -> dict[str, str]:
        return {"filter": sync_filter(self.room_id, self.timeline_limit)}

    async def start(self, client: Client, user: User) -> str:
        status, reply, _ = await client.call(
            "GET", "/sync", user.token, params={**self._params(), "timeout": "0"},
        )
        if status != 200 or "next_batch" not in reply:
            raise BenchError(f"initial sync of {user.user_id} -> {status} {reply}")
        return str(reply["next_batch"])

    async def poll(self, client: Client, user: User, since: str) -> tuple[int, str, Timeline]:
        status, reply, _ = await client.call("GET", "/sync", user.token, params={
            **self._params(), "since": since, "timeout": str(SYNC_TIMEOUT_MS),
        })
        timeline = reply.get("rooms", {}).get("join", {}).get(self.room_id, {}).get("timeline", {})
        return status, str(reply.get("next_batch", since)), (
            timeline.get("events", []), bool(timeline.get("limited")),
        )


@dataclass(frozen=True, slots=True)
class SlidingFeed:
    """Simplified sliding sync (MSC4186, the path Element X speaks): one list whose range covers
    the receiver's only room, the same timeline limit as `/sync`, members lazy-loaded; the body
    is sent again with every request, as matrix-rust-sdk does."""

    room_id: str
    timeline_limit: int

    def _body(self) -> dict[str, Any]:
        return {"conn_id": "bench", "lists": {"bench": {
            "ranges": [[0, 0]], "timeline_limit": self.timeline_limit,
            "required_state": [["m.room.member", "$LAZY"]],
        }}}

    async def start(self, client: Client, user: User) -> str:
        status, reply, _ = await client.call(
            "POST", SLIDING_SYNC_PATH, user.token, self._body(), params={"timeout": "0"},
        )
        if status != 200 or "pos" not in reply:
            raise BenchError(f"initial sliding sync of {user.user_id} -> {status} {reply}")
        return str(reply["pos"])

    async def poll(self, client: Client, user: User, since: str) -> tuple[int, str, Timeline]:
        status, reply, _ = await client.call(
            "POST", SLIDING_SYNC_PATH, user.token, self._body(),
            params={"pos": since, "timeout": str(SYNC_TIMEOUT_MS)},
        )
        room = reply.get("rooms", {}).get(self.room_id, {})
        return status, str(reply.get("pos", since)), (
            room.get("timeline", []), bool(room.get("limited")),
        )


FEEDS: dict[str, Callable[[str, int], Feed]] = {"sync": SyncFeed, "sliding": SlidingFeed}
PUSHERS = ("none", "receivers", "all")  # who holds a pusher to the bench's gateway


async def receive(
    client: Client, user: User, feed: Feed, since: str, state: Receiver, progress: asyncio.Event,
) -> None:
    """Long-poll until cancelled, recording each bench message's arrival."""
    while True:
        try:
            status, since_next, (events, limited) = await feed.poll(client, user, since)
        except (aiohttp.ClientError, TimeoutError):
            status, since_next, events, limited = 0, since, [], False
        arrived = time.time()
        if status != 200:
            state.sync_errors += 1
            await asyncio.sleep(SYNC_ERROR_BACKOFF_S)  # a failing server is not hammered
            continue
        state.syncs += 1
        since = since_next
        if limited:
            state.limited_syncs += 1
        for event in events:
            content = event.get("content", {})
            bench_id = content.get("bench_id")
            if event.get("type") != "m.room.message" or not isinstance(bench_id, str):
                continue
            state.seen[bench_id] = state.seen.get(bench_id, 0) + 1
            if state.seen[bench_id] == 1:
                state.latencies_ms[bench_id] = arrived * 1000 - int(content["bench_t_us"]) / 1000
        progress.set()


@dataclass(slots=True)
class SendResult:
    sent: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None


async def send_one(
    client: Client, user: User, room_id: str, bench_id: str, result: SendResult,
) -> None:
    """One `m.text` message carrying `bench_id` and its send start; its latency (or error)
    goes into `result`. Never retried."""
    path = f"/rooms/{quote(room_id, safe='')}/send/m.room.message/{quote(bench_id, safe='')}"
    started = time.time()
    # Integer microseconds: canonical JSON (room versions 6+) forbids floats.
    started_us = int(started * 1_000_000)
    content = {
        "msgtype": "m.text", "body": f"bench message {bench_id} sent at {started_us} us",
        "bench_id": bench_id, "bench_t_us": started_us,
    }
    try:
        status, reply, elapsed = await client.call("PUT", path, user.token, content)
    except (aiohttp.ClientError, TimeoutError) as exc:
        status, reply, elapsed = 0, {"error": repr(exc)}, time.time() - started
    if status == 200:
        result.sent.append(bench_id)
        result.latencies_ms.append(elapsed * 1000)
    else:
        result.errors += 1
        result.first_error = result.first_error or f"{status} {reply}"[:300]


async def send_all(
    client: Client, senders: list[User], room_id: str, total: int, prefix: str,
    rate: float | None = None,
) -> tuple[SendResult, float]:
    """`senders` workers share one counter; each sends sequentially, as a chat client would.
    With a `rate` (msgs/s), message i is not sent before i / rate seconds into the phase, so
    a faster server is offered no more messages than a slower one."""
    result = SendResult()
    counter = iter(range(total))
    phase_start = time.monotonic()

    async def worker(user: User) -> None:
        for index in counter:
            if rate:
                await asyncio.sleep(phase_start + index / rate - time.monotonic())
            await send_one(client, user, room_id, f"{prefix}-{index}", result)

    started = time.monotonic()
    await asyncio.gather(*(worker(user) for user in senders))
    return result, time.monotonic() - started


def read_status_kb(pid: int, key: str) -> int | None:
    """A `VmRSS:`/`VmHWM:` line of /proc/PID/status in kB, None once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass(slots=True)
class RssSampler:
    """Peak VmRSS per phase of the run, so a peak can be blamed on registration, joins or sends.

    VmHWM (read at the end) is the process's lifetime peak and is what the target compares;
    the per-phase peaks explain it.
    """

    pid: int
    phase: str = "register"
    peaks_kb: dict[str, int] = field(default_factory=dict)

    async def run(self) -> None:
        while True:
            rss = read_status_kb(self.pid, "VmRSS")
            if rss is not None and rss > self.peaks_kb.get(self.phase, 0):
                self.peaks_kb[self.phase] = rss
            await asyncio.sleep(RSS_SAMPLE_S)


def cpu_s(pid: int | None = None) -> float | None:
    """CPU seconds (user + system) a process used so far: the server's from /proc/PID/stat,
    this process's own without a pid; None once the process is gone."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(slots=True)
class CpuMeter:
    """CPU seconds of the server (and its push worker, and this load generator) from the
    start of the send phase to its end, and to the end of delivery (every /sync and push
    arrived): the work a message costs, whatever the send rate the run reached."""

    pids: dict[str, int]  # "server", "worker": the processes measured besides this one
    start: dict[str, float | None] = field(default_factory=dict)
    marks: dict[str, dict[str, float | None]] = field(default_factory=dict)

    def _read(self) -> dict[str, float | None]:
        return {**{who: cpu_s(pid) for who, pid in self.pids.items()}, "load": cpu_s()}

    def begin(self) -> None:
        self.start = self._read()

    def mark(self, name: str) -> None:
        self.marks[name] = self._read()

    def report(self, messages: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, readings in self.marks.items():
            for who, now in readings.items():
                then = self.start.get(who)
                if now is not None and then is not None:
                    out[f"{who}_{name}_s"] = round(now - then, 2)
                    if messages:
                        out[f"{who}_{name}_ms_per_msg"] = round((now - then) * 1000 / messages, 2)
        return out


def rss_report(sampler: RssSampler | None) -> dict[str, Any]:
    """The process's lifetime peak (VmHWM, or the highest sample once it is gone) and the peak
    of each phase, in MB."""
    if sampler is None:
        return {"peak_rss_mb": None, "rss_peak_mb_by_phase": {}}
    peaks = sampler.peaks_kb
    hwm = max([read_status_kb(sampler.pid, "VmHWM") or 0, *peaks.values()])
    return {
        "peak_rss_mb": round(hwm / 1024, 1) if hwm else None,
        "rss_peak_mb_by_phase": {phase: round(kb / 1024, 1) for phase, kb in peaks.items()},
    }


async def wait_delivered(
    receivers: list[Receiver], expected: list[str], progress: asyncio.Event, drain_s: float,
) -> None:
    """Until every receiver saw every sent message, or `drain_s` passed without it."""
    wanted = set(expected)
    await wait_progress(
        lambda: all(wanted <= r.seen.keys() for r in receivers), progress, drain_s,
    )


async def wait_progress(done: Callable[[], bool], progress: asyncio.Event, drain_s: float) -> None:
    """Until `done()`, checked whenever `progress` is set, or `drain_s` passed without it."""
    deadline = time.monotonic() + drain_s
    while not done():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        progress.clear()
        try:
            await asyncio.wait_for(progress.wait(), remaining)
        except TimeoutError:
            return


@dataclass(slots=True)
class GatewayProcess:
    """`bench/push_gateway.py` in a process of its own (see why there), asked for what it
    recorded over HTTP."""

    process: asyncio.subprocess.Process
    url: str  # the pushers' `data.url`

    @classmethod
    async def start(cls) -> GatewayProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable, GATEWAY_SCRIPT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        return cls(process, (await process.stdout.readline()).decode().strip())

    async def stats(self, session: aiohttp.ClientSession) -> dict[str, Any]:
        async with session.get(self.url.split("/_matrix", 1)[0] + STATS_PATH) as resp:
            stats: dict[str, Any] = await resp.json()
            return stats

    async def wait(self, session: aiohttp.ClientSession, expected: int, drain_s: float) -> None:
        """Until `expected` distinct pushes arrived, or `drain_s` passed without one more."""
        received, since = -1, time.monotonic()
        while time.monotonic() - since < drain_s:
            now = (await self.stats(session))["received"]
            if now >= expected:
                return
            if now > received:
                received, since = now, time.monotonic()
            await asyncio.sleep(GATEWAY_POLL_S)

    def cpu_s(self) -> float | None:
        return cpu_s(self.process.pid)

    async def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        await self.process.wait()


def require_loopback(url: str) -> None:
    """This machine's servers only: a load run never targets another address."""
    host = urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise BenchError(f"refusing to load a non-loopback server: {host}")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.users < args.senders + args.receivers:
        raise BenchError("--users must be at least --senders + --receivers")
    require_loopback(args.url)
    sampler = RssSampler(args.pid) if args.pid else None
    sampling = asyncio.create_task(sampler.run()) if sampler else None
    load_before = os.getloadavg()
    limit = args.senders + args.receivers + args.concurrency + 8
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit)
    timeout = aiohttp.ClientTimeout(total=SYNC_TIMEOUT_MS / 1000 + 60)
    push: dict[str, Any] = {}
    cpu = CpuMeter({
        who: pid for who, pid in (("server", args.pid), ("worker", args.worker_pid)) if pid
    })
    gateway: GatewayProcess | None = None
    gateway_cpu_s: float | None = None
    holders: list[User] = []
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        client = Client(session, args.url)
        log(f"registering {args.users} users as {args.prefix}-*")
        users: list[User] = await bounded(args.concurrency, [
            register(client, f"{args.prefix}-{i}") for i in range(args.users)
        ])
        created, _ = await client.setup_call(
            "POST", "/createRoom", users[0].token,
            {"preset": "public_chat", "name": f"bench {args.prefix}"},
        )
        room_id = str(created["room_id"])
        log(f"room {room_id}; {args.users - 1} joins")
        join_path = f"/join/{quote(room_id, safe='')}"
        if sampler:
            sampler.phase = "join"
        joins_started = time.monotonic()
        joins = await bounded(args.concurrency, [
            client.setup_call("POST", join_path, user.token, {}) for user in users[1:]
        ])
        joins_total = time.monotonic() - joins_started
        join_ms = [elapsed * 1000 for _, elapsed in joins]

        receiver_users = users[-args.receivers:]
        if args.pushers != "none":
            holders = receiver_users if args.pushers == "receivers" else users
            log(f"{len(holders)} pushers to a loopback gateway")
            gateway = await GatewayProcess.start()
            await bounded(args.concurrency, [
                client.setup_call(
                    "POST", "/pushers/set", user.token, pusher_body(gateway.url, f"p{i}"),
                )
                for i, user in enumerate(holders)
            ])
        feed = FEEDS[args.receive](room_id, args.timeline_limit)
        tokens = await bounded(args.concurrency, [
            feed.start(client, user) for user in receiver_users
        ])
        states = [Receiver() for _ in receiver_users]
        progress = asyncio.Event()
        tasks = [
            asyncio.create_task(receive(client, user, feed, since, state, progress))
            for user, since, state in zip(receiver_users, tokens, states, strict=True)
        ]
        log(f"sending {args.messages} messages from {args.senders} senders")
        if sampler:
            sampler.phase = "send"
        cpu.begin()
        gateway_cpu_s = gateway.cpu_s() if gateway is not None else None
        sent, send_s = await send_all(
            client, users[:args.senders], room_id, args.messages, args.prefix,
        )
        cpu.mark("send")
        log(f"sent {len(sent.sent)} in {send_s:.1f} s; waiting for delivery")
        await wait_delivered(states, sent.sent, progress, args.drain)
        # Every message notifies every pusher holder but its sender (senders hold one with
        # `--pushers all`, never with `receivers`).
        expected_pushes = len(sent.sent) * (len(holders) - (args.pushers == "all"))
        if gateway is not None:
            await gateway.wait(session, expected_pushes, args.drain)
        cpu.mark("delivered")
        if gateway is not None:
            push = await gateway.stats(session)
            gateway_cpu_s = round((gateway.cpu_s() or 0) - (gateway_cpu_s or 0), 2)
            await gateway.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if sampling is not None:
        sampling.cancel()
    fanout = [ms for state in states for ms in state.latencies_ms.values()]
    expected = set(sent.sent)
    return {
        "url": args.url, "users": args.users, "messages": args.messages,
        "senders": args.senders, "receivers": args.receivers, "receive": args.receive,
        "load_avg_before": [round(x, 2) for x in load_before],
        "joins": {
            "count": len(join_ms), "p50_ms": percentile(join_ms, 50),
            "p99_ms": percentile(join_ms, 99), "total_s": round(joins_total, 2),
        },
        "send": {
            "sent": len(sent.sent),
            "msgs_per_s": round(len(sent.sent) / send_s, 1) if send_s else None,
            "p50_ms": percentile(sent.latencies_ms, 50),
            "p99_ms": percentile(sent.latencies_ms, 99),
            "errors": sent.errors, "first_error": sent.first_error,
        },
        "fanout": spread(fanout),
        "lost": sum(len(expected - state.seen.keys()) for state in states),
        "duplicates": sum(n - 1 for state in states for n in state.seen.values() if n > 1),
        "syncs": sum(state.syncs for state in states),
        "limited_syncs": sum(state.limited_syncs for state in states),
        "sync_errors": sum(state.sync_errors for state in states),
        "push": push_report(args.pushers, len(holders), expected_pushes, push, gateway_cpu_s),
        "cpu": cpu.report(len(sent.sent)),
        **rss_report(sampler),
    }


def push_report(
    mode: str, holders: int, expected: int, push: dict[str, Any], cpu_s: float | None,
) -> dict[str, Any] | None:
    """What the bench's gateway got (its `stats`): pushes about bench messages (distinct per
    pusher and message), duplicates, those expected and never received within the drain time,
    badge-only updates, send start → arrival at the gateway, and the gateway's CPU seconds.
    None without pushers."""
    if mode == "none":
        return None
    return {
        "pushers": mode, "holders": holders, "expected": expected,
        "received": push["received"], "missing": max(0, expected - push["received"]),
        "duplicates": push["duplicates"], "badges": push["badges"], "other": push["other"],
        "latency": spread(push["latencies_ms"]), "gateway_cpu_s": cpu_s,
    }


def log(message: str) -> None:
    print(f"[load {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="client API base URL, e.g. http://127.0.0.1:8008")
    parser.add_argument("--users", type=int, default=256)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--receivers", type=int, default=16)
    parser.add_argument("--pid", type=int, default=None, help="server process to sample RSS of")
    parser.add_argument("--worker-pid", type=int, default=None,
                        help="a worker process of the server (its push worker) to measure CPU of")
    parser.add_argument("--prefix", default=f"bench{secrets.token_hex(3)}",
                        help="user name prefix, unique per run (default: random)")
    parser.add_argument("--concurrency", type=int, default=16,
                        help="registrations, joins and initial syncs in flight")
    parser.add_argument("--timeline-limit", type=int, default=100)
    parser.add_argument("--receive", choices=sorted(FEEDS), default="sync",
                        help="receivers long-poll /sync or simplified sliding sync (MSC4186)")
    parser.add_argument("--pushers", choices=PUSHERS, default="none",
                        help="the receivers (or all users) hold an http pusher to a loopback "
                             "gateway the run starts; the server must allow loopback gateways")
    parser.add_argument("--drain", type=float, default=60.0,
                        help="seconds to wait for delivery after the last send")
    parser.add_argument("--deadline", type=float, default=1200.0, help="whole run, seconds")
    return parser.parse_args(argv)


def run_cli(
    name: str, run: Callable[[argparse.Namespace], Awaitable[dict[str, Any]]],
    args: argparse.Namespace,
) -> int:
    """Run a load under its whole-run deadline; print its figures as JSON (exit status 0) or
    what stopped it (1). Shared by this script and federation.py."""
    try:
        result = asyncio.run(asyncio.wait_for(run(args), args.deadline))
    except (BenchError, TimeoutError, aiohttp.ClientError) as exc:
        print(f"{name}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli("load.py", run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
