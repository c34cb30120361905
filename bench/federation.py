"""Cross-server fan-out between two federating Matrix homeservers, spec Client-Server API only.

Theory of operation: `--users` accounts are registered on each of two running servers; the
first user of server 1 creates a public room, the others of server 1 join it, then one user of
server 2 joins through server 1 (`via`: the remote join that brings server 2 into the room) and
the rest of server 2's users join on server 2. Once both servers list every member, `--receivers`
users on *each* server long-poll `/sync` and `--senders` users on each server send `--messages`
messages in total, half from each server. Every message carries its id and send start time
(`bench/load.py` does the sending and receiving), so a receiver on the other server measures the
**cross-server fan-out**: send start on one server → the `/sync` response carrying the message on
the other, through both servers' federation paths. Receivers also see the messages of their own
server: that local fan-out is reported beside it, for scale. Each sender sends its next message
when the last one is answered, so a faster server is offered more messages; `--rate` paces the
senders instead, to compare servers at one offered load. One JSON object goes to stdout,
progress to stderr; it measures only, asserts nothing, retries no send.

Loopback servers only; everything is bounded by `--deadline`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
from load import (
    SYNC_TIMEOUT_MS,
    BenchError,
    Client,
    Receiver,
    RssSampler,
    SendResult,
    SyncFeed,
    User,
    bounded,
    log,
    percentile,
    receive,
    register,
    require_loopback,
    rss_report,
    run_cli,
    send_all,
    spread,
    wait_delivered,
)

SETTLE_POLL_S = 0.5


@dataclass
class Server:
    """One of the two servers under load: its client, its users and what its receivers saw."""

    label: str
    client: Client
    sampler: RssSampler | None
    users: list[User] = field(default_factory=list)
    receivers: list[Receiver] = field(default_factory=list)
    sent: SendResult = field(default_factory=SendResult)
    send_s: float = 0.0

    @property
    def server_name(self) -> str:
        return self.users[0].user_id.split(":", 1)[1]

    def phase(self, name: str) -> None:
        if self.sampler is not None:
            self.sampler.phase = name


def join_figures(joins: list[tuple[dict[str, Any], float]], total_s: float) -> dict[str, Any]:
    ms = [elapsed * 1000 for _, elapsed in joins]
    return {
        "count": len(ms), "p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99),
        "total_s": round(total_s, 2),
    }


async def join_all(
    server: Server, users: list[User], room_id: str, via: str, concurrency: int,
) -> dict[str, Any]:
    """`users` join, `concurrency` at a time, naming `via` as a server to join through."""
    path = f"/join/{quote(room_id, safe='')}"
    started = time.monotonic()
    joins = await bounded(concurrency, [
        server.client.setup_call("POST", path, user.token, {}, {"via": via}) for user in users
    ])
    return join_figures(joins, time.monotonic() - started)


async def joined_count(server: Server, room_id: str) -> int:
    status, reply, _ = await server.client.call(
        "GET", f"/rooms/{quote(room_id, safe='')}/joined_members", server.users[0].token,
    )
    joined = reply.get("joined") if status == 200 else None
    return len(joined) if isinstance(joined, dict) else 0


async def settle(servers: list[Server], room_id: str, members: int, limit_s: float) -> float:
    """Seconds until every server lists all `members` as joined (the joins have federated),
    so that the send phase measures messages, not a backlog of joins."""
    started = time.monotonic()
    while True:
        counts = await asyncio.gather(*(joined_count(s, room_id) for s in servers))
        if all(n >= members for n in counts):
            return time.monotonic() - started
        if time.monotonic() - started > limit_s:
            raise BenchError(f"joined members after {limit_s:.0f} s: {counts}, not {members}")
        await asyncio.sleep(SETTLE_POLL_S)


async def start_receivers(
    server: Server, room_id: str, count: int, timeline_limit: int, progress: asyncio.Event,
) -> list[asyncio.Task[None]]:
    """The last `count` users of `server` long-poll /sync from a token taken now."""
    feed = SyncFeed(room_id, timeline_limit)
    users = server.users[-count:]
    tokens = await bounded(count, [feed.start(server.client, u) for u in users])
    server.receivers = [Receiver() for _ in users]
    return [
        asyncio.create_task(receive(server.client, u, feed, since, r, progress))
        for u, since, r in zip(users, tokens, server.receivers, strict=True)
    ]


async def send_from(
    server: Server, room_id: str, senders: int, total: int, prefix: str, rate: float | None,
) -> None:
    server.sent, server.send_s = await send_all(
        server.client, server.users[:senders], room_id, total, f"{prefix}.{server.label}", rate,
    )


def fanout(receivers: list[Receiver], sent: list[str]) -> tuple[list[float], int]:
    """Latencies of the messages in `sent` at `receivers`, and the (receiver, message) pairs
    never seen."""
    wanted = set(sent)
    samples = [ms for r in receivers for i, ms in r.latencies_ms.items() if i in wanted]
    return samples, sum(len(wanted - r.seen.keys()) for r in receivers)


def send_figures(results: list[SendResult], wall_s: float) -> dict[str, Any]:
    latencies = [ms for r in results for ms in r.latencies_ms]
    sent = sum(len(r.sent) for r in results)
    errors = [r.first_error for r in results if r.first_error]
    return {
        "sent": sent, "msgs_per_s": round(sent / wall_s, 1) if wall_s else None,
        "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
        "errors": sum(r.errors for r in results), "first_error": errors[0] if errors else None,
    }


def report(one: Server, two: Server, send_wall_s: float) -> dict[str, Any]:
    """The figures: cross-server fan-out per direction and both together, local fan-out, send
    rate, losses and duplicates."""
    cross_12, lost_12 = fanout(two.receivers, one.sent.sent)
    cross_21, lost_21 = fanout(one.receivers, two.sent.sent)
    local_1, lost_1 = fanout(one.receivers, one.sent.sent)
    local_2, lost_2 = fanout(two.receivers, two.sent.sent)
    receivers = one.receivers + two.receivers
    return {
        "send": send_figures([one.sent, two.sent], send_wall_s) | {
            "by_server": [send_figures([s.sent], s.send_s) for s in (one, two)],
        },
        "cross_fanout": spread(cross_12 + cross_21) | {
            "1_to_2": spread(cross_12), "2_to_1": spread(cross_21),
        },
        "local_fanout": spread(local_1 + local_2),
        "lost": {"cross": lost_12 + lost_21, "local": lost_1 + lost_2},
        "duplicates": sum(n - 1 for r in receivers for n in r.seen.values() if n > 1),
        "syncs": sum(r.syncs for r in receivers),
        "limited_syncs": sum(r.limited_syncs for r in receivers),
        "sync_errors": sum(r.sync_errors for r in receivers),
        "rss": [rss_report(s.sampler) for s in (one, two)],
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.users < args.senders + args.receivers:
        raise BenchError("--users must be at least --senders + --receivers")
    for url in (args.url1, args.url2):
        require_loopback(url)
    load_before = os.getloadavg()
    samplers = [RssSampler(pid) if pid else None for pid in (args.pid1, args.pid2)]
    sampling = [asyncio.create_task(s.run()) for s in samplers if s is not None]
    limit = 2 * (args.senders + args.receivers + args.concurrency + 8)
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit // 2)
    timeout = aiohttp.ClientTimeout(total=SYNC_TIMEOUT_MS / 1000 + 60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        one, two = servers = [
            Server(label, Client(session, url), sampler)
            for label, url, sampler in zip("12", (args.url1, args.url2), samplers, strict=True)
        ]
        log(f"registering {args.users} users on each server as {args.prefix}-*")
        one.users, two.users = await asyncio.gather(*(
            bounded(args.concurrency, [
                register(s.client, f"{args.prefix}-{i}") for i in range(args.users)
            ]) for s in servers
        ))
        body: dict[str, Any] = {"preset": "public_chat", "name": f"bench {args.prefix}"}
        if args.room_version:
            body["room_version"] = args.room_version
        created, _ = await one.client.setup_call("POST", "/createRoom", one.users[0].token, body)
        room_id = str(created["room_id"])
        for s in servers:
            s.phase("join")
        log(f"room {room_id} on {one.server_name}; {args.users - 1} local joins")
        joins_1 = await join_all(one, one.users[1:], room_id, one.server_name, args.concurrency)
        log(f"the remote join from {two.server_name}, then {args.users - 1} more there")
        remote = await join_all(two, two.users[:1], room_id, one.server_name, 1)
        joins_2 = await join_all(two, two.users[1:], room_id, one.server_name, args.concurrency)
        settled_s = await settle(servers, room_id, 2 * args.users, args.settle)
        log(f"both servers list {2 * args.users} members ({settled_s:.1f} s after the last join)")

        progress = asyncio.Event()
        tasks = [
            task for s in servers for task in await start_receivers(
                s, room_id, args.receivers, args.timeline_limit, progress,
            )
        ]
        log(f"sending {args.messages} messages from {args.senders} senders on each server")
        for s in servers:
            s.phase("send")
        started = time.monotonic()
        half = args.messages // 2
        rate = args.rate / 2 if args.rate else None
        await asyncio.gather(
            send_from(one, room_id, args.senders, half, args.prefix, rate),
            send_from(two, room_id, args.senders, args.messages - half, args.prefix, rate),
        )
        send_wall_s = time.monotonic() - started
        everything = one.sent.sent + two.sent.sent
        log(f"sent {len(everything)} in {send_wall_s:.1f} s; waiting for delivery")
        await wait_delivered(one.receivers + two.receivers, everything, progress, args.drain)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in sampling:
        task.cancel()
    return {
        "servers": [{"url": u, "server_name": s.server_name}
                    for u, s in zip((args.url1, args.url2), servers, strict=True)],
        "room_id": room_id, "room_version": args.room_version or "server default",
        "users_per_server": args.users, "messages": args.messages,
        "senders_per_server": args.senders, "receivers_per_server": args.receivers,
        "paced_msgs_per_s": args.rate,
        "load_avg_before": [round(x, 2) for x in load_before],
        "joins": {
            "local_on_1": joins_1, "remote_first_ms": remote["p50_ms"], "local_on_2": joins_2,
            "settled_s": round(settled_s, 2),
        },
        **report(one, two, send_wall_s),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url1", required=True,
                        help="client API of the server that creates the room")
    parser.add_argument("--url2", required=True, help="client API of the server that joins it")
    parser.add_argument("--pid1", type=int, default=None, help="server 1's process, for RSS")
    parser.add_argument("--pid2", type=int, default=None, help="server 2's process, for RSS")
    parser.add_argument("--users", type=int, default=128, help="per server")
    parser.add_argument("--messages", type=int, default=500, help="in total, half per server")
    parser.add_argument("--senders", type=int, default=8, help="per server")
    parser.add_argument("--receivers", type=int, default=8, help="per server")
    parser.add_argument("--rate", type=float, default=None,
                        help="pace the senders: at most this many msgs/s, both servers together "
                             "(default: as fast as each sender's replies come)")
    parser.add_argument("--room-version", default=None, help="default: the creator's default")
    parser.add_argument("--prefix", default=f"fed{secrets.token_hex(3)}",
                        help="user name prefix, unique per run (default: random)")
    parser.add_argument("--concurrency", type=int, default=16,
                        help="registrations and joins in flight, per server")
    parser.add_argument("--timeline-limit", type=int, default=100)
    parser.add_argument("--settle", type=float, default=300.0,
                        help="seconds to wait for both servers to list every member")
    parser.add_argument("--drain", type=float, default=60.0,
                        help="seconds to wait for delivery after the last send")
    parser.add_argument("--deadline", type=float, default=1200.0, help="whole run, seconds")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return run_cli("federation.py", run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
