"""`GET /health` (issue 19): 200 `OK` while the process and its database answer, 503 while
the database does not, on the main process and on a worker. The outage is real: the test's
database stops accepting connections and the server's are terminated, then it comes back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp
import asyncpg

from homeserver.app import Homeserver
from tests.worker_cluster import until

if TYPE_CHECKING:
    from tests.conftest import MakeServer

WORKER = "health1"


async def health(session: aiohttp.ClientSession, port: int) -> tuple[int, str, str]:
    async with session.get(f"http://127.0.0.1:{port}/health") as response:
        return response.status, await response.text(), response.content_type


@asynccontextmanager
async def worker_of(main: Homeserver) -> AsyncIterator[Homeserver]:
    """A /sync worker process's server, in this process, following `main`."""
    worker = Homeserver(main.config, worker=WORKER)
    try:
        await worker.start()
        yield worker
    finally:
        await worker.stop()


@asynccontextmanager
async def refused_connections(postgres_dsn: str, database_url: str) -> AsyncIterator[None]:
    """The server's database down for everyone: new connections refused, open ones cut."""
    name = urlsplit(database_url).path.lstrip("/")
    admin = await asyncpg.connect(postgres_dsn)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        yield
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()


async def test_health_follows_the_database(
    make_homeserver: MakeServer, postgres_dsn: str, database_url: str,
) -> None:
    server = await make_homeserver(
        {"workers": {WORKER: {"client": {"host": "127.0.0.1", "port": 0}}}}
    )
    async with worker_of(server.hs) as worker, aiohttp.ClientSession() as session:
        ports = [server.hs.ports["client"], worker.ports["client"]]

        async def all_answer(status: int) -> bool:
            return all([(await health(session, port))[0] == status for port in ports])

        for port in ports:
            assert await health(session, port) == (200, "OK", "text/plain")
        async with refused_connections(postgres_dsn, database_url):
            await until(lambda: all_answer(503), "/health to answer 503 during the outage")
            for port in ports:
                status, _, content_type = await health(session, port)
                assert (status, content_type) == (503, "text/plain")
            # The process itself still answers what needs no database.
            async with session.get(f"{server.url}/_matrix/client/versions") as response:
                assert response.status == 200
        await until(lambda: all_answer(200), "/health to answer 200 once the database is back")
