"""The main process and one /sync worker (`run --worker sync1`) on one database, from one
config file: what the worker tests of /sync and of sliding sync stand on."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import write_test_config
from tests.federation_helpers import free_port
from tests.helpers import MatrixApi, User
from tests.interop.conftest import ServerProcess, port_overrides

WORKER = "sync1"
DEADLINE_S = 15.0
POLL_S = 0.01
HELD = re.compile(r"^moot_sync_long_polls_in_flight (\S+)$", re.MULTILINE)


async def until(condition: Callable[[], Awaitable[bool]], what: str, deadline_s: float = DEADLINE_S
                ) -> None:
    deadline = time.monotonic() + deadline_s
    while not await condition():
        assert time.monotonic() < deadline, f"timed out after {deadline_s} s waiting for {what}"
        await asyncio.sleep(POLL_S)


@dataclass
class Cluster:
    main: ServerProcess
    worker: ServerProcess
    worker_metrics_port: int
    session: aiohttp.ClientSession

    def __post_init__(self) -> None:
        # One client per process for the whole test: it numbers its transaction IDs.
        self.on_main = MatrixApi(self.main.url, self.session)
        self.on_worker = MatrixApi(self.worker.url, self.session)

    async def held_long_polls(self) -> float:
        url = f"http://127.0.0.1:{self.worker_metrics_port}/metrics"
        async with self.session.get(url) as resp:
            match = HELD.search(await resp.text())
        return float(match[1]) if match else 0.0

    async def wait_until_held(self, poll: asyncio.Task[Any]) -> None:
        """Until the worker holds a long-poll (it is registered before it reads anything)."""
        await until(
            lambda: _held_or_done(self, poll), "the worker to hold the /sync long-poll"
        )
        assert not poll.done(), f"the long-poll returned early: {poll.result()}"

    async def room_of_two(self) -> tuple[User, User, str]:
        """alice and bob registered through the main process, both joined to alice's room."""
        alice = await self.on_main.register("alice")
        bob = await self.on_main.register("bob")
        room_id = await self.on_main.create_room(alice, preset="public_chat")
        await self.on_main.join(bob, room_id)
        return alice, bob, room_id


async def _held_or_done(cluster: Cluster, poll: asyncio.Task[Any]) -> bool:
    return poll.done() or await cluster.held_long_polls() >= 1


@asynccontextmanager
async def worker_cluster(
    database_url: str, tmp_path: Path, extra: dict[str, Any] | None = None
) -> AsyncIterator[Cluster]:
    """Both processes started (`extra`: more config overrides); stopped on the way out, the
    worker first."""
    worker_client, worker_metrics = free_port(), free_port()
    overrides = {
        **(extra or {}),
        **port_overrides(),
        "workers": {WORKER: {
            "client": {"host": "127.0.0.1", "port": worker_client},
            "metrics": {"host": "127.0.0.1", "port": worker_metrics},
        }},
    }
    config = write_test_config(tmp_path / "data", database_url, overrides)
    client_port = overrides["listeners.client.port"]
    main = ServerProcess(config, tmp_path / "main.log", client_port)
    worker = ServerProcess(config, tmp_path / "worker.log", worker_client,
                           extra_args=("--worker", WORKER))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        try:
            await main.start()
            await worker.start()
            yield Cluster(main, worker, worker_metrics, session)
        finally:
            for process in (worker, main):
                if process.proc is not None:
                    await process.stop()
