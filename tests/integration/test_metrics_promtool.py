"""`promtool check metrics` (Prometheus's own linter) finds nothing to say about the whole
/metrics page of a server that has served some traffic: names, units, types and help texts
as Prometheus wants them, so that dashboards and alert rules can rely on them."""

from __future__ import annotations

import asyncio
import shutil

import aiohttp
import pytest

from tests.conftest import RunningServer
from tests.helpers import MatrixApi
from tests.metrics_scrape import scrape


async def test_promtool_finds_nothing_to_lint_on_a_loaded_server(
    api: MatrixApi, homeserver: RunningServer, http: aiohttp.ClientSession
) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        print("promtool is not installed (make tools installs it): nothing to check with")
        pytest.skip("promtool is not installed")
    alice = await api.register("alice")
    room = await api.create_room(alice)
    for i in range(3):
        await api.send_message(alice, room, f"message {i}")
    await api.sync(alice)
    status, _ = await api.request("GET", "joined_rooms")
    assert status == 401

    page = await scrape(homeserver, http)
    lint = await asyncio.create_subprocess_exec(
        promtool, "check", "metrics",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await lint.communicate(page.encode())
    assert (lint.returncode, output.decode()) == (0, "")
