"""Moot servers run as real subprocesses (`python -m homeserver run --config FILE`).

The in-process `homeserver` fixture cannot be killed with SIGKILL or stopped with SIGTERM the way
an operator's server is; these fixtures can. A subprocess cannot report a port chosen with port 0,
so the config gets free ports picked by binding 127.0.0.1:0 first.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import nio
import pytest

from tests.conftest import RunningServer, write_test_config
from tests.federation_helpers import free_port
from tests.nio_clients import new_client
from tests.peer_process import wait_until_answers

CHECKOUT = Path(__file__).resolve().parents[2]
START_DEADLINE_S = 60.0
STOP_DEADLINE_S = 20.0


def port_overrides() -> dict[str, Any]:
    """Config overrides putting every listener on its own free loopback port."""
    return {
        "listeners.client.port": free_port(),
        "listeners.federation.port": free_port(),
        "listeners.metrics.port": free_port(),
    }


@dataclass
class ServerProcess:
    """One Moot server process; it can be killed and restarted on the same config and database."""

    config_path: Path
    log_path: Path
    client_port: int
    proc: asyncio.subprocess.Process | None = None
    extra_args: tuple[str, ...] = ()  # after `run --config FILE`, e.g. ("--worker", "sync1")
    _logs: list[Any] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    async def start(self) -> None:
        """Start the process and wait until the client API answers /versions."""
        assert self.proc is None or self.proc.returncode is not None, "already running"
        log = self.log_path.open("ab")
        self._logs.append(log)
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "homeserver", "run", "--config", str(self.config_path),
            *self.extra_args, cwd=CHECKOUT, stdin=asyncio.subprocess.DEVNULL, stdout=log,
            stderr=log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        await self._wait_until_up()

    async def _wait_until_up(self) -> None:
        assert self.proc is not None
        async with aiohttp.ClientSession() as session:
            await wait_until_answers(
                self.proc, session, self.url + "/_matrix/client/versions", "server",
                START_DEADLINE_S, self.log_tail,
            )

    async def _wait(self, deadline_s: float) -> int | None:
        """The exit code, or None if the process is still running after `deadline_s`."""
        assert self.proc is not None
        try:
            return await asyncio.wait_for(self.proc.wait(), deadline_s)
        except TimeoutError:
            return None

    async def kill(self) -> None:
        """SIGKILL the server process (only it: an embedded postmaster lives on)."""
        assert self.proc is not None
        self.proc.kill()
        await self._wait(STOP_DEADLINE_S)

    async def stop(self) -> int:
        """SIGTERM, wait for a graceful exit (SIGKILL if it hangs); return the exit code."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.terminate()
            if await self._wait(STOP_DEADLINE_S) is None:
                self.proc.kill()
                await self._wait(STOP_DEADLINE_S)
        for log in self._logs:
            log.close()
        self._logs.clear()
        assert self.proc.returncode is not None
        return self.proc.returncode

    async def restart_after_kill(self) -> None:
        await self.kill()
        await self.start()


SpawnServer = Callable[..., Awaitable[ServerProcess]]


@pytest.fixture
async def spawn_server(tmp_path: Path) -> AsyncIterator[SpawnServer]:
    """Factory: `await spawn_server(database_url, data_dir=None, overrides=None)`.

    `database_url=None` leaves the database unconfigured: the server starts its embedded one in
    the data directory. Every server still running at teardown gets SIGTERM.
    """
    started: list[ServerProcess] = []

    async def spawn(
        database_url: str | None, data_dir: Path | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> ServerProcess:
        data_dir = data_dir or tmp_path / f"hs{len(started)}"
        ports = port_overrides()
        all_overrides = {**ports, **(overrides or {})}
        if database_url is None:
            all_overrides["database.url"] = None
        config = write_test_config(data_dir, database_url or "", all_overrides)
        server = ServerProcess(
            config, tmp_path / f"hs{len(started)}.log", ports["listeners.client.port"]
        )
        started.append(server)
        await server.start()
        return server

    yield spawn
    for server in reversed(started):
        if server.proc is not None:
            await server.stop()


def signal_postmaster(cluster_dir: Path, sig: signal.Signals) -> None:
    """Signal the postmaster of an embedded cluster by its postmaster.pid, if it still runs."""
    pidfile = cluster_dir / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().split("\n", 1)[0])
        os.kill(pid, sig)
    except (OSError, ValueError):
        pass


@pytest.fixture
async def clients(homeserver: RunningServer) -> AsyncIterator[Callable[[str], nio.AsyncClient]]:
    """Makes nio clients and closes their HTTP sessions at the end."""
    made: list[nio.AsyncClient] = []

    def make(localpart: str) -> nio.AsyncClient:
        made.append(new_client(homeserver, localpart))
        return made[-1]

    yield make
    for client in made:
        await client.close()
