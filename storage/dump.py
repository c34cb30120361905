"""A whole database to one file and back: `pg_dump` and `pg_restore` of a matching version.

`pg_dump` reads one snapshot (a repeatable-read transaction), so a dump taken while the server
writes is consistent without stopping it. Which programs to run is decided by version, not by
`PATH`: `pg_dump` cannot read a server newer than itself, and an archive of a newer `pg_dump`
cannot be read by an older `pg_restore`; the major version equal to the server's is preferred
(PostgreSQL does not promise that newer tools' output loads into an older server), else the
newest one that is new enough. Candidates are the directories the embedded server's binaries
are looked for in (`storage.embedded.known_bindirs`), plus a configured one and `PATH`'s.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from storage.embedded import known_bindirs


class DumpError(Exception):
    """A dump or restore could not run or failed; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class Tool:
    path: Path
    major: int  # the PostgreSQL major version the program belongs to


def find_tools(name: str, configured_bindir: str | None) -> list[Tool]:
    """Every runnable `name` (pg_dump, pg_restore) with its major version, each once."""
    dirs = [Path(configured_bindir)] if configured_bindir else []
    dirs += known_bindirs()
    if on_path := shutil.which(name):
        dirs.append(Path(on_path).resolve().parent)
    tools: list[Tool] = []
    for directory in dict.fromkeys(d.resolve() for d in dirs if (d / name).is_file()):
        try:
            out = subprocess.run([directory / name, "--version"], capture_output=True,
                                 text=True, timeout=10, check=True).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        if m := re.search(r"\(PostgreSQL\) (\d+)", out):
            tools.append(Tool(directory / name, int(m.group(1))))
    return tools


def choose_tool(name: str, tools: list[Tool], server_major: int, at_least: int = 0) -> Tool:
    """The server's own major version if it is at least `at_least`, else the newest that is
    at least both."""
    usable = [t for t in tools if t.major >= max(server_major, at_least)]
    same = [t for t in usable if t.major == server_major]
    if same or usable:
        return (same or sorted(usable, key=lambda t: t.major))[-1]
    found = ", ".join(f"{t.path} ({t.major})" for t in tools) or "none"
    raise DumpError(
        f"no {name} of PostgreSQL {max(server_major, at_least)} or newer (found: {found}); "
        "install that version's client programs (apt-get install postgresql-client-"
        f"{max(server_major, at_least)}) or set database.embedded_bindir to their directory"
    )


def _without_password(dsn: str) -> tuple[str, dict[str, str]]:
    """The DSN minus its password (in the user part or as a `password=` parameter, which
    libpq lets win), and the environment that passes it instead: a program's arguments are
    readable by every local user (`ps`), its environment is not."""
    url = urllib.parse.urlsplit(dsn)
    password = urllib.parse.unquote(url.password) if url.password is not None else None
    if url.password is not None:
        user, host = url.netloc.rsplit("@", 1)
        url = url._replace(netloc=f"{user.split(':', 1)[0]}@{host}")
    query = urllib.parse.parse_qsl(url.query, keep_blank_values=True)
    if any(key == "password" for key, _ in query):
        password = [value for key, value in query if key == "password"][-1]
        kept = [(key, value) for key, value in query if key != "password"]
        url = url._replace(query=urllib.parse.urlencode(kept))
    if password is None:
        return dsn, {}
    return url.geturl(), {"PGPASSWORD": password}


async def _run(tool: Tool, dsn: str, *args: str) -> None:
    url, extra_env = _without_password(dsn)
    proc = await asyncio.create_subprocess_exec(
        tool.path, f"--dbname={url}", *args, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **extra_env},
    )
    out, _ = await proc.communicate()
    if proc.returncode:
        raise DumpError(f"{tool.path.name} failed ({proc.returncode}): "
                        f"{out.decode(errors='replace')[-2000:]}")


async def dump_database(tool: Tool, dsn: str, file: Path) -> None:
    """Write the database to `file` in pg_dump's custom format (compressed, restorable with
    pg_restore; owners and grants are kept in it and skipped at restore)."""
    await _run(tool, dsn, "--format=custom", f"--file={file}")


async def restore_database(tool: Tool, dsn: str, file: Path) -> None:
    """Load a dump into an empty database in one transaction: a failure leaves it empty.
    Objects are owned by the connecting role, whatever role owned them on the old machine."""
    await _run(tool, dsn, "--no-owner", "--no-acl", "--single-transaction",
               "--exit-on-error", str(file))


COUNT_RELATIONS = """
SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
"""


async def is_empty(conn: asyncpg.Connection) -> bool:
    """Whether the database holds no table, sequence or view of its own (restore refuses to
    mix a backup into existing data)."""
    count: int = await conn.fetchval(COUNT_RELATIONS)
    return count == 0


GET_SCHEMA_VERSION = "SELECT max(version) FROM schema_version"


async def get_schema_version(conn: asyncpg.Connection) -> int:
    """The newest migration applied to the database."""
    version: int = await conn.fetchval(GET_SCHEMA_VERSION)
    return version
