"""The push worker (`workers.pusher1.push: true`, `run --worker pusher1`): the main process
queues pushes and the worker, a process of its own with no client listener, delivers them to
a recording gateway on loopback. A notification reaches the gateway exactly once, and from the
worker: the main process sends nothing when a push worker is configured. A worker killed with
SIGKILL while pushes wait (its gateway answering 503) delivers all of them, and those queued
while it was down, once restarted. The unread counts the worker sends follow notifications
and read receipts. Everything waits by polling with deadlines.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import write_test_config
from tests.federation_helpers import free_port
from tests.helpers import MatrixApi
from tests.interop.conftest import ServerProcess, port_overrides
from tests.peer_process import wait_until_answers
from tests.push_gateway import RecordingGateway
from tests.push_rooms import GroupRoom, group_room, send
from tests.worker_cluster import until

WORKER = "pusher1"
SENT = re.compile(r'^moot_push_sent_total\{kind="http"\} (\S+)$', re.MULTILINE)


class PushWorkerProcess(ServerProcess):
    """The push worker: its only listener serves metrics (`client_port` names it)."""

    async def _wait_until_up(self) -> None:
        # The worker listens for metrics once its push sender runs.
        assert self.proc is not None
        async with aiohttp.ClientSession() as session:
            await wait_until_answers(
                self.proc, session, f"http://127.0.0.1:{self.client_port}/metrics", "worker",
                30.0, self.log_tail,
            )


@dataclass
class PushCluster:
    main: ServerProcess
    worker: PushWorkerProcess
    main_metrics_port: int
    gateway: RecordingGateway
    api: MatrixApi
    session: aiohttp.ClientSession

    async def sent(self, port: int) -> float:
        """The pushes a process's gateway client had accepted (its metrics)."""
        async with self.session.get(f"http://127.0.0.1:{port}/metrics") as resp:
            match = SENT.search(await resp.text())
        return float(match[1]) if match else 0.0

    async def room_with_pusher(self) -> GroupRoom:
        """The group room; Bob holds a pusher to the gateway."""
        room = await group_room(self.api, preset="public_chat")
        await self.api.ok("POST", "pushers/set", token=room.bob.token, json={
            "kind": "http", "app_id": "org.example.app", "pushkey": "bob-phone",
            "app_display_name": "Example", "device_display_name": "Phone", "lang": "en",
            "data": {"url": self.gateway.url},
        })
        return room

    async def arrived(self, event_ids: list[str]) -> None:
        await until(
            lambda: _now(set(event_ids) <= set(self.gateway.events())),
            f"{len(event_ids)} pushes at the gateway",
        )


async def _now(value: bool) -> bool:
    """A value known now, as the awaitable `until` polls."""
    return value


@pytest.fixture
async def cluster(database_url: str, tmp_path: Path) -> AsyncIterator[PushCluster]:
    gateway = RecordingGateway()
    await gateway.start()
    worker_metrics = free_port()
    overrides = {
        **port_overrides(),
        "push.allow_private_addresses": True,
        "workers": {WORKER: {"push": True,
                             "metrics": {"host": "127.0.0.1", "port": worker_metrics}}},
    }
    config = write_test_config(tmp_path / "data", database_url, overrides)
    main = ServerProcess(config, tmp_path / "main.log", overrides["listeners.client.port"])
    worker = PushWorkerProcess(config, tmp_path / "worker.log", worker_metrics,
                               extra_args=("--worker", WORKER))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        try:
            await main.start()
            await worker.start()
            yield PushCluster(
                main, worker, overrides["listeners.metrics.port"], gateway,
                MatrixApi(main.url, session), session,
            )
        finally:
            for process in (worker, main):
                if process.proc is not None:
                    await process.stop()
            await gateway.stop()


async def test_the_worker_delivers_each_push_once_and_the_main_process_none(
    cluster: PushCluster,
) -> None:
    room = await cluster.room_with_pusher()
    first = await send(cluster.api, room.alice, room.room_id, "m.room.message",
                       {"msgtype": "m.text", "body": "hello"})
    await cluster.arrived([first])
    # A later push arriving means the earlier one had its chance to arrive twice.
    second = await send(cluster.api, room.alice, room.room_id, "m.room.message",
                        {"msgtype": "m.text", "body": "again"})
    await cluster.arrived([second])

    assert cluster.gateway.events() == [first, second]
    assert await cluster.sent(cluster.worker.client_port) >= 2
    assert await cluster.sent(cluster.main_metrics_port) == 0


async def test_the_workers_counts_follow_notifications_and_receipts(cluster: PushCluster) -> None:
    """The worker keeps unread counts from what the main process announces."""
    room = await cluster.room_with_pusher()
    for body in ("one", "two"):  # (a count is read when its push goes out: one at a time)
        await cluster.arrived([await send(cluster.api, room.alice, room.room_id,
                                          "m.room.message", {"msgtype": "m.text", "body": body})])
    await cluster.api.ok("POST", f"rooms/{room.room_id}/receipt/m.read/"
                         f"{cluster.gateway.events()[-1]}", json={}, token=room.bob.token)
    await until(lambda: _now(len(cluster.gateway.received) >= 3), "the badge update")
    third = await send(cluster.api, room.alice, room.room_id, "m.room.message",
                       {"msgtype": "m.text", "body": "three"})
    await cluster.arrived([third])

    counts = [(n.get("event_id") is not None, n["counts"]["unread"])
              for n in cluster.gateway.received]
    assert counts == [(True, 1), (True, 2), (False, 0), (True, 1)]


async def test_a_killed_worker_delivers_the_backlog_once_restarted(
    cluster: PushCluster,
) -> None:
    room = await cluster.room_with_pusher()
    cluster.gateway.down = True
    waiting = [await send(cluster.api, room.alice, room.room_id, "m.room.message",
                          {"msgtype": "m.text", "body": "while the gateway is down"})]
    await until(lambda: _now(cluster.gateway.refused >= 1), "the worker to try the gateway")
    await cluster.worker.kill()
    for i in range(5):  # queued while no process delivers
        waiting.append(await send(cluster.api, room.alice, room.room_id, "m.room.message",
                                  {"msgtype": "m.text", "body": f"while the worker is down {i}"}))
    cluster.gateway.down = False
    await cluster.worker.start()

    await cluster.arrived(waiting)
    # None was accepted before the kill, so none may arrive twice; and all in queue order.
    assert cluster.gateway.events() == waiting
    assert Counter(cluster.gateway.events()).most_common(1)[0][1] == 1
    assert await cluster.sent(cluster.main_metrics_port) == 0
