"""Registration files at start-up: the services are loaded into the running server, and a bad
file (or two services sharing an identity) stops `moot run` with the file, field and reason."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from homeserver.api.context import APPSERVICES
from homeserver.config import ConfigError
from tests.appservices import registration, write_registrations
from tests.conftest import write_test_config

if TYPE_CHECKING:
    from tests.conftest import MakeServer

ROOT = Path(__file__).resolve().parents[2]


async def test_the_registrations_are_reachable_from_the_app(
    make_homeserver: MakeServer, tmp_path: Path
) -> None:
    files = write_registrations(
        tmp_path / "appservices", registration("bridge"), registration("bot", prefix="_bot_")
    )
    server = await make_homeserver({"appservices.registration_files": files})
    services = server.hs.appservices
    assert [r.id for r in services] == ["bridge", "bot"]
    client_app = server.hs.runners[0].app
    assert client_app[APPSERVICES] is services


async def test_a_duplicate_as_token_stops_the_server(
    make_homeserver: MakeServer, tmp_path: Path
) -> None:
    files = write_registrations(
        tmp_path / "appservices", registration("one"),
        {**registration("two", prefix="_two_"), "as_token": "as_token_of_one"},
    )
    with pytest.raises(ConfigError, match=r"two\.yaml: as_token: the same as in .*one\.yaml"):
        await make_homeserver({"appservices.registration_files": files})


async def test_moot_run_names_the_file_the_field_and_the_reason(
    database_url: str, tmp_path: Path
) -> None:
    bad = registration("bridge")
    bad["namespaces"]["users"] = [{"regex": "@_bridge_.*", "exclusive": "yes"}]
    [path] = write_registrations(tmp_path / "appservices", bad)
    config = write_test_config(
        tmp_path / "hs", database_url, {"appservices.registration_files": [path]}
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "homeserver", "run", "--config", str(config),
        cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), timeout=60)
    stderr = err.decode()
    assert process.returncode == 2, stderr
    assert path in stderr
    assert "namespaces.users[0].exclusive: expected true or false" in stderr
