"""Simplified sliding sync (MSC4186) for a user in many rooms: the first response, and the server
memory that an idle connection holds. Spec Client-Server API and the sliding sync path only.

Theory of operation: register one measured user and `--others` helpers; the measured user creates
`--rooms` rooms (each with a name, every second one an avatar, every third one encrypted), then
`--members - 1` helpers join each room and the last of them sends one message, so that the rooms
have different recency and `$LAZY` has a sender to load. The **first response** is what an app
waits for at start: a request without `pos` (the connection starts over) for one list with range
0-19, timeline_limit 1 and required_state for the name, avatar, encryption and the timeline's
senders' memberships; it is sent `--requests` times one after another, and the very first
(nothing cached yet) is reported apart. Then the **idle connections**: the measured user logs in
`--idle` more times (one device each), the server's resident memory is read from /proc, each
device in turn opens a connection (the same first request, timed: a new device's first response)
and long-polls it with its `pos`; once every long-poll is waiting, the memory is read again: the
difference divided by `--idle` is the memory per idle connection. Given several servers (`--url`
repeated), each is set up in turn, the first requests take turns between them (so that other
load on the machine weighs on each alike), and the idle connections are measured one server
after the other; the JSON is then {"servers": [one result per server]}. One JSON object goes to
stdout, progress to stderr; it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import time
from typing import Any
from urllib.parse import quote

import aiohttp
from load import (
    PASSWORD,
    SLIDING_SYNC_PATH,
    BenchError,
    Client,
    User,
    bounded,
    log,
    percentile,
    read_status_kb,
    register,
    require_loopback,
    run_cli,
)

FIRST_REQUEST: dict[str, Any] = {"conn_id": "room-list", "lists": {"all": {
    "ranges": [[0, 19]], "timeline_limit": 1,
    "required_state": [
        ["m.room.name", ""], ["m.room.avatar", ""], ["m.room.encryption", ""],
        ["m.room.member", "$LAZY"],
    ],
}}}
IDLE_TIMEOUT_MS = 120_000
RSS_SAMPLES = 10
RSS_SAMPLE_S = 0.2
SETTLE_S = 2.0


def room_body(index: int) -> dict[str, Any]:
    """A public room (neither server encrypts it by default), so encryption is only where this
    asks for it; avatars point nowhere, as no client fetches them here."""
    state: list[dict[str, Any]] = []
    if index % 2:
        state.append({"type": "m.room.avatar", "state_key": "",
                      "content": {"url": f"mxc://localhost/avatar{index}"}})
    if index % 3 == 0:
        state.append({"type": "m.room.encryption", "state_key": "",
                      "content": {"algorithm": "m.megolm.v1.aes-sha2"}})
    return {"preset": "public_chat", "name": f"room {index}", "initial_state": state}


async def timed(jobs: list[Any], concurrency: int) -> tuple[list[Any], float]:
    started = time.monotonic()
    results = await bounded(concurrency, jobs)
    return results, round(time.monotonic() - started, 2)


async def populate(
    client: Client, owner: User, others: list[User], rooms: int, members: int, concurrency: int,
) -> tuple[list[str], dict[str, float]]:
    """The owner's rooms, each joined by `members - 1` helpers, the last of whom speaks last."""
    created, create_s = await timed([
        client.setup_call("POST", "/createRoom", owner.token, room_body(i)) for i in range(rooms)
    ], concurrency)
    room_ids = [str(reply["room_id"]) for reply, _ in created]
    log(f"{rooms} rooms created in {create_s} s; joining {members - 1} helpers to each")
    joiners = [
        [others[(i * (members - 1) + j) % len(others)] for j in range(members - 1)]
        for i in range(rooms)
    ]
    _, join_s = await timed([
        client.setup_call("POST", f"/join/{quote(room_id, safe='')}", user.token, {})
        for room_id, users in zip(room_ids, joiners, strict=True) for user in users
    ], concurrency)
    speakers = [users[-1] if users else owner for users in joiners]
    _, send_s = await timed([
        client.setup_call(
            "PUT", f"/rooms/{quote(room_id, safe='')}/send/m.room.message/first{i}", user.token,
            {"msgtype": "m.text", "body": f"last message of room {i}"},
        )
        for i, (room_id, user) in enumerate(zip(room_ids, speakers, strict=True))
    ], concurrency)
    return room_ids, {"create_s": create_s, "join_s": join_s, "send_s": send_s}


async def open_connection(client: Client, user: User) -> tuple[str, dict[str, Any]]:
    status, reply, _ = await client.call(
        "POST", SLIDING_SYNC_PATH, user.token, FIRST_REQUEST, params={"timeout": "0"},
    )
    if status != 200 or "pos" not in reply:
        raise BenchError(f"first sliding sync of {user.user_id} -> {status} {reply}"[:500])
    return str(reply["pos"]), reply


def shape(reply: dict[str, Any]) -> dict[str, int]:
    """What a first response held, to check that both servers answered the same question."""
    rooms = reply.get("rooms", {})
    return {
        "count": int(reply.get("lists", {}).get("all", {}).get("count", -1)),
        "rooms": len(rooms),
        "required_state_events": sum(len(r.get("required_state", [])) for r in rooms.values()),
        "timeline_events": sum(len(r.get("timeline", [])) for r in rooms.values()),
        "bytes": len(json.dumps(reply)),
    }


async def first_responses(
    clients: list[Client], owners: list[User], requests: int, pause_s: float,
) -> list[dict[str, Any]]:
    """Sequential first requests on one connection id (each starts the connection over), taking
    turns between the servers, so that whatever else the machine runs meanwhile weighs on
    each server's samples alike."""
    times: list[list[float]] = [[] for _ in clients]
    replies: list[dict[str, Any]] = [{} for _ in clients]
    for _ in range(requests):
        for i, (client, owner) in enumerate(zip(clients, owners, strict=True)):
            started = time.monotonic()
            _, replies[i] = await open_connection(client, owner)
            times[i].append((time.monotonic() - started) * 1000)
            await asyncio.sleep(pause_s)
    return [{
        "cold_ms": round(ms[0], 1), "p50_ms": percentile(ms[1:], 50),
        "p99_ms": percentile(ms[1:], 99), "max_ms": round(max(ms[1:]), 1),
        "samples": len(ms) - 1, "shape": shape(reply),
    } for ms, reply in zip(times, replies, strict=True)]


async def login(client: Client, localpart: str) -> User:
    reply, _ = await client.setup_call("POST", "/login", body={
        "type": "m.login.password", "password": PASSWORD,
        "identifier": {"type": "m.id.user", "user": localpart},
    })
    return User(reply["user_id"], reply["access_token"])


async def rss_kb(pid: int) -> float:
    """The median of a few VmRSS readings, so one allocation in flight does not decide it."""
    samples: list[int] = []
    for _ in range(RSS_SAMPLES):
        samples.append(read_status_kb(pid, "VmRSS") or 0)
        await asyncio.sleep(RSS_SAMPLE_S)
    return statistics.median(samples)


async def idle(
    client: Client, device: User, opening: asyncio.Lock, first_ms: list[float],
    waiting: set[str], all_waiting: asyncio.Event, total: int,
) -> None:
    """One device's connection: opened (one device at a time, so that its first response is
    timed alone), then long-polled with its `pos` until cancelled; `waiting` holds the devices
    whose long-poll is in flight."""
    async with opening:
        started = time.monotonic()
        pos, _ = await open_connection(client, device)
        first_ms.append((time.monotonic() - started) * 1000)
    while True:
        waiting.add(device.token)
        if len(waiting) == total:
            all_waiting.set()
        try:
            status, reply, _ = await client.call(
                "POST", SLIDING_SYNC_PATH, device.token, FIRST_REQUEST,
                params={"pos": pos, "timeout": str(IDLE_TIMEOUT_MS)},
            )
        finally:
            waiting.discard(device.token)
        if status != 200:
            raise BenchError(f"idle long-poll -> {status} {reply}"[:500])
        pos = str(reply.get("pos", pos))


async def idle_memory(
    client: Client, localpart: str, pid: int | None, connections: int, concurrency: int,
) -> dict[str, Any]:
    """Resident memory before and after `connections` new devices each hold a long-polling
    connection; also the first response of each new device (nothing of it cached yet)."""
    devices = (await timed([login(client, localpart) for _ in range(connections)], concurrency))[0]
    await asyncio.sleep(SETTLE_S)
    before = await rss_kb(pid) if pid else None
    opening, all_waiting = asyncio.Lock(), asyncio.Event()
    first_ms: list[float] = []
    waiting: set[str] = set()
    started = time.monotonic()
    tasks = [
        asyncio.create_task(idle(client, d, opening, first_ms, waiting, all_waiting, connections))
        for d in devices
    ]
    done = asyncio.create_task(all_waiting.wait())
    finished, _ = await asyncio.wait([done, *tasks], return_when=asyncio.FIRST_COMPLETED)
    if done not in finished:  # a connection failed: its exception says why
        for task in finished:
            task.result()
    open_s = round(time.monotonic() - started, 2)
    await asyncio.sleep(SETTLE_S)
    after = await rss_kb(pid) if pid else None
    still_waiting = len(waiting)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    per_kb = (after - before) / connections if before is not None and after is not None else None
    return {
        "connections": connections, "open_s": open_s, "waiting_at_reading": still_waiting,
        "new_device_first_ms": {"p50_ms": percentile(first_ms, 50),
                                "p99_ms": percentile(first_ms, 99)},
        "rss_before_mb": round(before / 1024, 1) if before is not None else None,
        "rss_open_mb": round(after / 1024, 1) if after is not None else None,
        "per_connection_kb": round(per_kb, 1) if per_kb is not None else None,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    for url in args.url:
        require_loopback(url)
    pids: list[int | None] = args.pid or [None] * len(args.url)
    if len(pids) != len(args.url):
        raise BenchError("give --pid once per --url, or not at all")
    if args.members < 1 or args.others < args.members - 1:
        raise BenchError("--members must be at least 1 and at most --others + 1")
    limit = args.idle + args.concurrency + 8
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit)
    timeout = aiohttp.ClientTimeout(total=IDLE_TIMEOUT_MS / 1000 + 60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        clients = [Client(session, url) for url in args.url]
        owners: list[User] = []
        setups: list[dict[str, float]] = []
        for client, url in zip(clients, args.url, strict=True):  # one server at a time
            log(f"{url}: registering {args.others + 1} users as {args.prefix}-*")
            owner, *others = await bounded(args.concurrency, [
                register(client, f"{args.prefix}-{i}") for i in range(args.others + 1)
            ])
            log(f"{url}: creating {args.rooms} rooms for {owner.user_id}")
            _, setup = await populate(
                client, owner, others, args.rooms, args.members, args.concurrency,
            )
            log(f"{url}: set up in {setup}")
            owners.append(owner)
            setups.append(setup)
        log(f"{args.requests + 1} first requests to each server, taking turns")
        firsts = await first_responses(clients, owners, args.requests + 1, args.pause)
        results = []
        for client, url, pid, setup, first in zip(
            clients, args.url, pids, setups, firsts, strict=True,
        ):
            log(f"{url}: first response p50 {first['p50_ms']} ms; {args.idle} idle connections")
            idle_figures = await idle_memory(
                client, f"{args.prefix}-0", pid, args.idle, args.concurrency,
            ) if args.idle else None
            results.append({
                "url": url, "rooms": args.rooms, "members_per_room": args.members,
                "setup": setup, "first_response": first, "idle": idle_figures,
                "peak_rss_mb": round((read_status_kb(pid, "VmHWM") or 0) / 1024, 1)
                if pid else None,
            })
    return results[0] if len(results) == 1 else {"servers": results}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, action="append",
                        help="client API base URL, e.g. http://127.0.0.1:8008; repeat it to "
                             "measure several servers side by side")
    parser.add_argument("--pid", type=int, action="append",
                        help="server process to read RSS of, once per --url")
    parser.add_argument("--rooms", type=int, default=500)
    parser.add_argument("--members", type=int, default=3, help="members of each room")
    parser.add_argument("--others", type=int, default=8, help="helper users who join the rooms")
    parser.add_argument("--requests", type=int, default=100,
                        help="first requests timed after the cold one")
    parser.add_argument("--pause", type=float, default=0.0,
                        help="seconds of quiet after each first request")
    parser.add_argument("--idle", type=int, default=200,
                        help="idle connections for memory (0: not measured)")
    parser.add_argument("--concurrency", type=int, default=16,
                        help="set-up requests in flight")
    parser.add_argument("--prefix", default=f"first{secrets.token_hex(3)}",
                        help="user name prefix, unique per run (default: random)")
    parser.add_argument("--deadline", type=float, default=1200.0, help="whole run, seconds")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return run_cli("sliding_first.py", run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
