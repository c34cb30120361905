"""What the servers tests run as subprocesses (Synapse, Sygnal, Prometheus) share: waiting
for one to answer, stopping it, and reading its logs for a failing test's report."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import yaml

POLL_INTERVAL_S = 0.1
STOP_DEADLINE_S = 20.0
LOG_TAIL_LINES = 60


def file_logging(path: Path) -> dict[str, Any]:
    """A `logging.config.dictConfig` that writes everything from INFO up to ``path`` (Synapse's
    log config file and Sygnal's `log.setup` both take this form)."""
    return {
        "version": 1,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {"file": {
            "class": "logging.FileHandler", "filename": str(path), "formatter": "plain",
        }},
        "root": {"level": "INFO", "handlers": ["file"]},
        "disable_existing_loggers": False,
    }


def write_yaml(path: Path, config: dict[str, Any]) -> Path:
    """Write a peer's config file (Synapse's and Sygnal's are YAML); return its path."""
    path.write_text(yaml.safe_dump(config))
    return path


def tail_files(files: list[tuple[Path, int]], lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of each existing file after its byte offset, each under its name
    (a peer's log since a test began, and its stdout)."""
    parts = []
    for path, start in files:
        if path.exists():
            with path.open("rb") as f:
                f.seek(start)
                text = f.read().decode(errors="replace")
            parts.append(f"--- {path.name} ---\n" + "\n".join(text.splitlines()[-lines:]))
    return "\n".join(parts)


async def wait_until_answers(
    proc: asyncio.subprocess.Process, http: aiohttp.ClientSession, url: str, name: str,
    deadline_s: float, log_tail: Callable[[], str],
) -> None:
    """Poll ``url`` until it answers 200; fail with the peer's log if the process exits first
    or ``deadline_s`` passes."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise AssertionError(f"{name} exited with {proc.returncode}:\n{log_tail()}")
        try:
            async with http.get(url) as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(POLL_INTERVAL_S)
    raise AssertionError(f"{name} not up after {deadline_s} s:\n{log_tail()}")


async def terminate(proc: asyncio.subprocess.Process | None) -> None:
    """SIGTERM and wait (SIGKILL if it hangs); nothing for a process that is not running."""
    if proc is None or proc.returncode is not None:
        return
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), STOP_DEADLINE_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
