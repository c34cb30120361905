"""Shared set-up of the security audit's probe modules (tests/integration/test_audit_*.py).

Each module runs many probes against one server and one cast of users built once for the
module, so that the suite stays fast; the probes only read, or change what no other probe of
the module looks at.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from homeserver.app import Homeserver
from homeserver.config import load_config
from tests.conftest import RunningServer, throwaway_database, write_test_config


@asynccontextmanager
async def module_server(
    postgres_dsn: str, data_dir: Path, overrides: dict[str, Any] | None = None
) -> AsyncIterator[RunningServer]:
    """One server on its own throwaway database, for a whole test module."""
    async with throwaway_database(postgres_dsn) as url:
        hs = Homeserver(load_config(write_test_config(data_dir, url, overrides)))
        await hs.start()
        try:
            yield RunningServer(hs, data_dir)
        finally:
            await hs.stop()


def errcode(body: Any) -> str | None:
    """The Matrix error code of a response body, if it is one."""
    return body.get("errcode") if isinstance(body, dict) else None
