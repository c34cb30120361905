"""A PostgreSQL cluster that one test owns: made with chosen settings, and killed whole.

Only a cluster the test made in its own directory is ever killed, never the machine's shared
server: its processes are found through that directory's postmaster.pid and the postmaster's
children, so another cluster's processes cannot be mistaken for them.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Mapping
from pathlib import Path

import asyncpg

from storage.embedded import DATABASE, SUPERUSER, EmbeddedPostgres


async def make_cluster(cluster_dir: Path, settings: Mapping[str, str]) -> None:
    """Create (initdb) the embedded cluster in `cluster_dir` before a server uses it, with
    `settings` written by ALTER SYSTEM: postgresql.auto.conf is read after the moot.conf the
    server rewrites at every start, so they hold across the server's restarts."""
    cluster = EmbeddedPostgres(cluster_dir)
    await cluster.start()
    try:
        conn = await asyncpg.connect(cluster.dsn)
        try:
            for name, value in settings.items():
                await conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        finally:
            await conn.close()
    finally:
        await cluster.stop()


async def checkpoint(cluster_dir: Path) -> None:
    """Write and flush all WAL so far, whatever the cluster's settings: what came before is
    safe from the next kill."""
    conn = await asyncpg.connect(host=str(cluster_dir), user=SUPERUSER, database=DATABASE)
    try:
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


def _parent_pid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone meanwhile
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def kill_cluster(cluster_dir: Path) -> list[int]:
    """SIGKILL the cluster's postmaster and every process it forked, in one synchronous step;
    return a pidfd of each, readable once that process has died.

    The postmaster is stopped first (SIGSTOP), so that it forks nothing between the listing of
    its children and their death, and cannot die before them and leave them to init, where
    they would no longer be known as this cluster's.
    """
    postmaster = int((cluster_dir / "postmaster.pid").read_text().split("\n", 1)[0])
    os.kill(postmaster, signal.SIGSTOP)
    children = [
        int(entry.name) for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and _parent_pid(int(entry.name)) == postmaster
    ]
    pidfds = []
    for pid in [*children, postmaster]:
        try:
            pidfds.append(os.pidfd_open(pid))
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:  # a backend that exited on its own meanwhile
            pass
    return pidfds


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():  # a pidfd stays readable: the reader may fire again before removal
        future.set_result(None)


async def died(pidfds: list[int]) -> None:
    """Wait until every process behind `pidfds` has died (a pidfd turns readable), and close
    them."""
    loop = asyncio.get_running_loop()
    for fd in pidfds:
        gone: asyncio.Future[None] = loop.create_future()
        loop.add_reader(fd, _settle, gone)
        try:
            await gone
        finally:
            loop.remove_reader(fd)
            os.close(fd)
