"""The whole of a test database as text (`pg_dump --data-only`), for tests that prove that
something is gone from storage, not merely hidden: a marker absent from the dump is in no row
of any table."""

from __future__ import annotations

import asyncio

import asyncpg

from storage.dump import choose_tool, find_tools


async def dump_text(database_url: str) -> str:
    """Every row of every table of the database, as pg_dump writes them (COPY blocks)."""
    conn = await asyncpg.connect(database_url)
    try:
        major = conn.get_server_version().major
    finally:
        await conn.close()
    # Finding the tool runs pg_config and lists directories: not on the event loop.
    tool = choose_tool("pg_dump", await asyncio.to_thread(find_tools, "pg_dump", None), major)
    proc = await asyncio.create_subprocess_exec(
        tool.path, f"--dbname={database_url}", "--data-only", "--format=plain",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode(errors="replace")
    return out.decode()
