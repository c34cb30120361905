"""The shared test harness: a real PostgreSQL and real Moot servers on loopback.

One PostgreSQL cluster serves the whole run: the embedded one (started in a temporary
directory) unless MOOT_TEST_DATABASE_URL names a server we may create databases on. A template
database is migrated once; every test gets its own database cloned from it, so tests cannot see
each other's data and need no clean-up order.
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import pytest
import yaml

from homeserver.app import Homeserver
from homeserver.config import load_config
from homeserver.services.clock import SYSTEM_CLOCK, Clock
from homeserver.setup import init_data_dir
from storage.database import Database
from storage.embedded import EmbeddedPostgres
from storage.migrations import migrate
from tests.helpers import MatrixApi
from tests.loop_guard import LoopGuard

# The multi-server harness (`peers`, `peer_http`), a real Synapse as a peer (`synapse`) and a
# real Sygnal push gateway (`sygnal`), for any test module that asks for them.
pytest_plugins = ["tests.federation_peers", "tests.synapse_peer", "tests.sygnal_gateway"]

TEMPLATE_DB = f"moot_template_{os.getpid()}"

# The tiers, by directory: each test gets its directory's marker (registered in pyproject.toml),
# so `pytest -m "not interop"` and `make test-fast` select without listing files.
TIERS = ("unit", "storage", "integration", "interop")
# Fixtures that run a real Synapse from bench/.synapse-venv (`make synapse`); their tests are
# marked `synapse` too, so that a run without that venv can leave them out.
SYNAPSE_FIXTURES = frozenset({"synapse"})
# The tiers whose servers run on the test's own event loop: there a blocked loop fails the test.
LOOP_GUARDED_TIERS = ("storage", "integration")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test with its tier, and `synapse` when it needs the Synapse venv. A test
    outside the tier directories is an error: it would otherwise run in no tier or in every."""
    tests_dir = Path(__file__).parent
    for item in items:
        tier = item.path.relative_to(tests_dir).parts[0]
        if tier not in TIERS:
            raise pytest.UsageError(f"{item.nodeid}: tests live in tests/{{{','.join(TIERS)}}}/")
        item.add_marker(tier)
        if SYNAPSE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker("synapse")


def with_database(dsn: str, name: str) -> str:
    """The same server DSN pointed at database `name`."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@pytest.fixture(scope="session")
def loop_guard() -> Iterator[LoopGuard]:
    """Times every callback on the test loop's thread for the rest of the session."""
    guard = LoopGuard()
    uninstall = guard.install()
    yield guard
    uninstall()


@pytest.fixture(autouse=True)
def no_loop_blocking(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a storage or integration test during which (its fixtures' setup and teardown
    included) a callback blocked the event loop past tests/loop_guard.py's threshold."""
    if not any(request.node.get_closest_marker(tier) for tier in LOOP_GUARDED_TIERS):
        yield
        return
    guard: LoopGuard = request.getfixturevalue("loop_guard")
    guard.blocks.clear()
    yield
    assert not guard.blocks, "the event loop was blocked:\n" + "\n".join(map(str, guard.blocks))


@pytest.fixture(scope="session")
async def postgres_dsn() -> AsyncIterator[str]:
    """An admin DSN of the cluster the tests use, with a migrated template database."""
    configured = os.environ.get("MOOT_TEST_DATABASE_URL")
    embedded: EmbeddedPostgres | None = None
    tmp: tempfile.TemporaryDirectory[str] | None = None
    if configured:
        dsn = configured
    else:
        tmp = tempfile.TemporaryDirectory(prefix="moot-test-pg-")
        # Our own directory: let the unprivileged PostgreSQL user (when run as root) reach it.
        os.chmod(tmp.name, 0o755)
        embedded = EmbeddedPostgres(Path(tmp.name) / "pg")
        dsn = await embedded.start()
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}"')
        await admin.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
        conn = await asyncpg.connect(with_database(dsn, TEMPLATE_DB))
        try:
            await migrate(conn)
        finally:
            await conn.close()
        yield dsn
        await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
    finally:
        await admin.close()
        if embedded is not None:
            await embedded.stop()
        if tmp is not None:
            tmp.cleanup()


@asynccontextmanager
async def throwaway_database(
    postgres_dsn: str, template: str | None = TEMPLATE_DB
) -> AsyncIterator[str]:
    """A new database (a clone of `template`, or empty with None), dropped afterwards."""
    name = f"moot_test_{uuid.uuid4().hex[:12]}"
    clause = f' TEMPLATE "{template}"' if template else ""
    admin = await asyncpg.connect(postgres_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"{clause}')
        yield with_database(postgres_dsn, name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def database_url(postgres_dsn: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test."""
    async with throwaway_database(postgres_dsn) as url:
        yield url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A small pool on this test's fresh database, for tests of one component."""
    database = await Database.connect(database_url, min_size=1, max_size=4)
    yield database
    await database.close()


@dataclass
class RunningServer:
    hs: Homeserver
    data_dir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.hs.ports['client']}"

    @property
    def server_name(self) -> str:
        return self.hs.config.server.server_name


def write_test_config(
    data_dir: Path, database_url: str, overrides: dict[str, Any] | None = None,
    server_name: str = "localhost",
) -> Path:
    """A config for a server on ephemeral loopback ports: open registration, no rate limits."""
    path = init_data_dir(
        data_dir, server_name, client_port=0, federation_port=0, metrics_port=0,
        database_url=database_url, open_registration=True, rate_limits=False,
    )
    if overrides:
        raw = yaml.safe_load(path.read_text())
        for dotted, value in overrides.items():
            *parents, leaf = dotted.split(".")
            node = raw
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = value
        path.write_text(yaml.safe_dump(raw))
    return path


MakeServer = Callable[..., Awaitable[RunningServer]]


@pytest.fixture
async def make_homeserver(
    database_url: str, tmp_path: Path
) -> AsyncIterator[MakeServer]:
    """Factory for servers on this test's database (overrides are dotted config keys; a
    `clock` replaces the system clock)."""
    started: list[Homeserver] = []

    async def make(
        overrides: dict[str, Any] | None = None, *, clock: Clock = SYSTEM_CLOCK, **kw: Any
    ) -> RunningServer:
        data_dir = tmp_path / f"hs{len(started)}"
        config = load_config(write_test_config(data_dir, database_url, overrides, **kw))
        hs = Homeserver(config, clock=clock)
        await hs.start()
        started.append(hs)
        return RunningServer(hs, data_dir)

    yield make
    for hs in reversed(started):
        await hs.stop()


@pytest.fixture
async def homeserver(make_homeserver: MakeServer) -> RunningServer:
    return await make_homeserver()


@pytest.fixture
def no_server_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail a test during which anything logged an error (the middleware logs every 500);
    modules ask for it with `pytestmark = pytest.mark.usefixtures("no_server_errors")`."""
    yield
    errors = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def api(homeserver: RunningServer, http: aiohttp.ClientSession) -> MatrixApi:
    return MatrixApi(homeserver.url, http)
