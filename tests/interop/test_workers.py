"""Two processes on one database: the main process and a /sync worker (`run --worker sync1`).

A message sent through the main process wakes a /sync long-poll held by the worker (how fast is
measured in bench/, never asserted here); syncing back and forth between the two delivers every
event exactly once; killing either process with SIGKILL loses nothing acknowledged; a logout or
a membership change on the main process reaches the worker's caches at once; typing (held in the
main process's memory) and presence (written only by it) cross over too. Everything waits by
polling with deadlines.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import pytest

from storage.notify import LISTEN_APPLICATION
from tests.conftest import throwaway_database, write_test_config
from tests.helpers import MatrixApi, User
from tests.interop.conftest import CHECKOUT, free_port
from tests.worker_cluster import DEADLINE_S, WORKER, Cluster, until, worker_cluster

# Twice the deadline a test waits for a wake-up: an answer before the deadline is the wake-up.
LONG_POLL_MS = int(DEADLINE_S * 2000)
MESSAGES_ONLY = json.dumps({"room": {"timeline": {"limit": 100, "types": ["m.room.message"]}}})


@pytest.fixture
async def cluster(database_url: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    """The main process and worker `sync1`, from one config file, on one database."""
    async with worker_cluster(database_url, tmp_path) as running:
        yield running


async def sync(
    api: MatrixApi, user: User, since: str | None = None, timeout_ms: int = 0
) -> dict[str, Any]:
    """A /sync showing only messages (up to 100 per room), without touching presence."""
    params = {"timeout": str(timeout_ms), "filter": MESSAGES_ONLY, "set_presence": "offline"}
    if since is not None:
        params["since"] = since
    body: dict[str, Any] = await api.ok("GET", "sync", token=user.token, params=params)
    return body


def timeline_ids(body: dict[str, Any], room_id: str) -> list[str]:
    for section in ("join", "leave"):
        room = body["rooms"][section].get(room_id)
        if room is not None:
            return [e["event_id"] for e in room["timeline"]["events"]]
    return []


async def sync_until_seen(
    api: MatrixApi, user: User, room_id: str, since: str, wanted: set[str]
) -> tuple[list[str], str]:
    """Sync from `since` until every wanted event came; every event ID seen, in order."""
    seen: list[str] = []
    deadline = time.monotonic() + DEADLINE_S
    while not wanted <= set(seen):
        assert time.monotonic() < deadline, f"never delivered: {wanted - set(seen)}"
        body = await sync(api, user, since, timeout_ms=1000)
        seen += timeline_ids(body, room_id)
        since = body["next_batch"]
    return seen, since


async def test_a_send_through_main_wakes_a_sync_held_by_the_worker(cluster: Cluster) -> None:
    alice, bob, room_id = await cluster.room_of_two()
    since = (await sync(cluster.on_worker, bob))["next_batch"]
    for i in range(5):
        poll = asyncio.create_task(sync(cluster.on_worker, bob, since, LONG_POLL_MS))
        await cluster.wait_until_held(poll)
        event_id = await cluster.on_main.send_message(alice, room_id, f"ping {i}")
        body = await asyncio.wait_for(poll, DEADLINE_S)  # before the poll's own timeout
        assert timeline_ids(body, room_id) == [event_id]
        since = body["next_batch"]


async def test_syncing_across_both_processes_delivers_each_event_once(cluster: Cluster) -> None:
    alice, bob, room_id = await cluster.room_of_two()
    since = (await sync(cluster.on_worker, bob))["next_batch"]
    sent: list[str] = []

    async def send_all() -> None:
        for i in range(30):
            sent.append(await cluster.on_main.send_message(alice, room_id, f"message {i}"))

    sender = asyncio.create_task(send_all())
    seen: list[str] = []
    turn = 0
    deadline = time.monotonic() + DEADLINE_S * 2
    while not (sender.done() and set(sent) <= set(seen)):
        assert time.monotonic() < deadline, f"never delivered: {set(sent) - set(seen)}"
        api = (cluster.on_worker, cluster.on_main)[turn % 2]
        turn += 1
        body = await sync(api, bob, since, timeout_ms=500)
        seen += timeline_ids(body, room_id)
        since = body["next_batch"]
    await sender
    assert len(seen) == len(set(seen)), "an event was delivered twice"
    assert seen == sent
    assert turn >= 4


async def test_a_killed_worker_loses_nothing(cluster: Cluster) -> None:
    alice, bob, room_id = await cluster.room_of_two()
    since = (await sync(cluster.on_worker, bob))["next_batch"]
    poll = asyncio.create_task(sync(cluster.on_worker, bob, since, 30_000))
    await cluster.wait_until_held(poll)
    await cluster.worker.kill()
    with pytest.raises(aiohttp.ClientError):
        await poll
    sent = [await cluster.on_main.send_message(alice, room_id, f"while down {i}")
            for i in range(5)]
    await cluster.worker.start()
    seen, _ = await sync_until_seen(cluster.on_worker, bob, room_id, since, set(sent))
    assert seen == sent


async def test_a_killed_main_process_loses_nothing_acknowledged(cluster: Cluster) -> None:
    alice, bob, room_id = await cluster.room_of_two()
    since = (await sync(cluster.on_worker, bob))["next_batch"]
    sent = [await cluster.on_main.send_message(alice, room_id, f"acked {i}") for i in range(5)]
    await cluster.main.kill()
    await cluster.main.start()
    seen, since = await sync_until_seen(cluster.on_worker, bob, room_id, since, set(sent))
    assert seen == sent
    # The restarted main process wakes the worker's long-polls as before.
    poll = asyncio.create_task(sync(cluster.on_worker, bob, since, 30_000))
    await cluster.wait_until_held(poll)
    event_id = await cluster.on_main.send_message(alice, room_id, "after the restart")
    assert timeline_ids(await asyncio.wait_for(poll, DEADLINE_S), room_id) == [event_id]


async def test_a_logout_on_main_stops_the_token_on_the_worker_at_once(cluster: Cluster) -> None:
    _, bob, _ = await cluster.room_of_two()
    await sync(cluster.on_worker, bob)  # the worker now holds bob's token in its cache
    await cluster.on_main.ok("POST", "logout", json={}, token=bob.token)

    async def refused() -> bool:
        status, body = await cluster.on_worker.request("GET", "sync", token=bob.token)
        assert status in (200, 401), (status, body)
        return status == 401 and body["errcode"] == "M_UNKNOWN_TOKEN"

    await until(refused, "the worker to refuse the logged-out token", deadline_s=2.0)


async def test_a_leave_through_main_shows_in_the_workers_sync(cluster: Cluster) -> None:
    _, bob, room_id = await cluster.room_of_two()
    # The worker now holds bob's memberships (joined) in its cache.
    since = (await sync(cluster.on_worker, bob))["next_batch"]
    await cluster.on_main.ok("POST", f"rooms/{room_id}/leave", json={}, token=bob.token)
    body = await sync(cluster.on_worker, bob, since, timeout_ms=5000)
    assert room_id in body["rooms"]["leave"], body["rooms"]
    assert room_id not in body["rooms"]["join"]


async def test_a_redaction_through_main_reaches_the_workers_event_cache(
    cluster: Cluster
) -> None:
    """The worker cached a topic before main redacted it: the next topic's prev_content,
    which the worker's /sync builds from that cache, shows the redacted form."""
    alice, bob, room_id = await cluster.room_of_two()
    marker = "quokkasecret"

    async def set_topic(topic: str) -> str:
        body = await cluster.on_main.ok(
            "PUT", f"rooms/{room_id}/state/m.room.topic/", json={"topic": topic},
            token=alice.token,
        )
        return str(body["event_id"])

    topic = await set_topic(marker)
    since = ""

    async def worker_shows_topic() -> bool:
        nonlocal since
        body = await cluster.on_worker.ok("GET", "sync", token=bob.token)
        since = body["next_batch"]
        return marker in json.dumps(body)  # read through the worker's event cache

    await until(worker_shows_topic, "the worker's /sync to show the topic")
    await cluster.on_main.ok(
        "PUT", f"rooms/{room_id}/redact/{topic}/r1", json={}, token=alice.token
    )
    plain = await set_topic("plain")
    bodies = []
    while plain not in json.dumps(bodies):
        assert len(bodies) < 20, "the worker never delivered the new topic"
        body = await cluster.on_worker.ok(
            "GET", "sync", token=bob.token, params={"since": since, "timeout": "1000"}
        )
        bodies.append(body)
        since = body["next_batch"]
    assert marker not in json.dumps(bodies)


async def test_typing_and_presence_cross_between_the_processes(cluster: Cluster) -> None:
    alice, bob, room_id = await cluster.room_of_two()
    since = (await sync(cluster.on_worker, bob))["next_batch"]
    await cluster.on_main.ok(
        "PUT", f"rooms/{room_id}/typing/{alice.user_id}", json={"typing": True, "timeout": 30000},
        token=alice.token,
    )
    body = await sync(cluster.on_worker, bob, since, timeout_ms=5000)
    typing = body["rooms"]["join"][room_id]["ephemeral"]["events"]
    assert typing == [{"type": "m.typing", "content": {"user_ids": [alice.user_id]}}]

    # bob's /sync on the worker marks him online; the main process writes it.
    alice_since = (await cluster.on_main.sync(alice))["next_batch"]
    await cluster.on_worker.ok("GET", "sync", token=bob.token, params={"set_presence": "online"})
    body = await cluster.on_main.sync(alice, since=alice_since, timeout=5000)
    presence = {e["sender"]: e["content"]["presence"] for e in body["presence"]["events"]}
    assert presence.get(bob.user_id) == "online", body["presence"]


async def test_a_worker_serves_only_sync(cluster: Cluster) -> None:
    _, bob, _ = await cluster.room_of_two()
    status, body = await cluster.on_worker.request("GET", "joined_rooms", token=bob.token)
    assert (status, body["errcode"]) == (404, "M_UNRECOGNIZED")
    status, body = await cluster.on_worker.request(
        "PUT", "rooms/!x:localhost/send/m.room.message/t1", json={}, token=bob.token
    )
    assert (status, body["errcode"]) == (404, "M_UNRECOGNIZED")
    versions = await cluster.on_worker.ok("GET", "/_matrix/client/versions")
    assert "v1.12" in versions["versions"]
    # Older clients sync under r0, which deploy/nginx-workers.conf sends to the worker too.
    await cluster.on_worker.ok("GET", "/_matrix/client/r0/sync", token=bob.token)


def run_worker(config: Path, name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "homeserver", "run", "--config", str(config), "--worker", name],
        capture_output=True, text=True, cwd=CHECKOUT, timeout=60,
    )


async def test_an_unknown_worker_name_exits_with_status_2(tmp_path: Path) -> None:
    config = write_test_config(tmp_path, "postgresql://127.0.0.1/unused", {
        "workers": {WORKER: {"client": {"port": free_port()}}},
    })
    result = run_worker(config, "nope")
    assert result.returncode == 2, result.stderr
    assert "no worker named 'nope'" in result.stderr and WORKER in result.stderr


async def test_a_worker_refuses_a_database_the_main_process_has_not_migrated(
    postgres_dsn: str, tmp_path: Path
) -> None:
    async with throwaway_database(postgres_dsn, template=None) as empty:
        config = write_test_config(tmp_path, empty, {
            "workers": {WORKER: {"client": {"port": free_port()}}},
        })
        result = await asyncio.to_thread(run_worker, config, WORKER)
    assert result.returncode == 1, result.stderr
    assert "start the main process" in result.stderr


async def test_a_worker_that_loses_its_listen_connection_catches_up(
    cluster: Cluster, postgres_dsn: str, database_url: str
) -> None:
    """NOTIFY is not stored: what is sent while the worker is not listening is missed, so after
    reconnecting it learns the positions again and wakes every long-poll it holds."""
    alice, bob, room_id = await cluster.room_of_two()
    since = (await sync(cluster.on_worker, bob))["next_batch"]
    poll = asyncio.create_task(sync(cluster.on_worker, bob, since, 30_000))
    await cluster.wait_until_held(poll)
    admin = await asyncpg.connect(postgres_dsn)
    database = urlsplit(database_url).path.lstrip("/")
    try:
        # Both processes lose their LISTEN sessions and cannot open new ones for a while (the
        # pools keep theirs): the message sent meanwhile reaches no worker.
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND application_name = $2", database, LISTEN_APPLICATION,
        )
        event_id = await cluster.on_main.send_message(alice, room_id, "while disconnected")
    finally:
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        await admin.close()
    body = await asyncio.wait_for(poll, 10.0)  # far from the 30 s timeout
    seen, _ = await sync_until_seen(
        cluster.on_worker, bob, room_id, body["next_batch"], {event_id} - set(
            timeline_ids(body, room_id)
        ),
    )
    assert timeline_ids(body, room_id) + seen == [event_id]

    async def reconnected() -> bool:
        url = f"http://127.0.0.1:{cluster.worker_metrics_port}/metrics"
        async with cluster.session.get(url) as resp:
            return "moot_replication_reconnects_total 1.0" in await resp.text()

    await until(reconnected, "the worker to count its reconnect")
