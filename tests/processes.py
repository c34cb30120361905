"""Servers the tests run as child processes (Moot, Synapse, Prometheus): waiting until one
answers over HTTP, and stopping one the way a service manager does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiohttp

POLL_S = 0.05


async def until_answers(
    proc: asyncio.subprocess.Process, url: str, name: str, deadline_s: float,
    log_tail: Callable[[], str],
) -> None:
    """Until `GET url` answers 200; fails at once, showing the log, if the process exits."""
    deadline = time.monotonic() + deadline_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}:\n{log_tail()}")
            try:
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(POLL_S)
    raise AssertionError(f"{name} not up after {deadline_s} s:\n{log_tail()}")


async def terminate(proc: asyncio.subprocess.Process, deadline_s: float) -> None:
    """SIGTERM and wait for the exit; SIGKILL if it outlasts `deadline_s`."""
    if proc.returncode is not None:
        return
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), deadline_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
