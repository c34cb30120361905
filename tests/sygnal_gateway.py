"""Sygnal, the Matrix reference push gateway, run from its release source as a test peer.

Sygnal is not on PyPI: `make sygnal` (which `make test` runs first) installs the release source
kept in ../shared/vendor/ into `bench/.sygnal-venv` (bench/sygnal-venv.sh). A test starts it
as a subprocess on a loopback port, with one app: its webpush pushkin, signing for the push
service with a VAPID key made here and asking for a fixed TTL. A homeserver's http pusher then
points at `notify_url`, the pusher's `data.endpoint`/`data.auth` at a subscription of the
loopback push service (tests/web_push.py), and what Sygnal makes of each notification arrives
there, encrypted for that subscription. Sygnal can be stopped and started again on the same
port, so a test can take the gateway down for a while.

`tests/conftest.py` registers this module as a plugin: any test can name the `sygnal` fixture.
At teardown it prints what Sygnal logged during the test, which pytest shows only for a failure.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.federation_helpers import free_port
from tests.peer_process import (
    file_logging,
    tail_files,
    terminate,
    wait_until_answers,
    write_yaml,
)
from tests.web_push import b64url, public_bytes

CHECKOUT = Path(__file__).resolve().parents[1]
SYGNAL_VENV = CHECKOUT / "bench" / ".sygnal-venv"
INSTALL_HINT = "run `make sygnal` (`make test` does it before pytest)"
APP_ID = "org.example.moot.web"  # the app ID a pusher names to reach the webpush pushkin
WEBPUSH_TTL_S = 321  # not Sygnal's default (900), so the header shows the config was read
NOTIFY_PATH = "/_matrix/push/v1/notify"
START_DEADLINE_S = 60.0
# A proxy in the environment would take Sygnal's requests away from loopback.
_PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


def sygnal_python() -> Path:
    """The venv's interpreter; without it the test fails (never skips) naming the make target."""
    python = SYGNAL_VENV / "bin" / "python"
    if not python.exists():
        pytest.fail(f"Sygnal is not installed in {SYGNAL_VENV}: {INSTALL_HINT}", pytrace=False)
    return python


def write_config(directory: Path, port: int, vapid_key: ec.EllipticCurvePrivateKey) -> Path:
    """sygnal.yaml and the VAPID key file in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    key_path = directory / "vapid.pem"
    key_path.write_bytes(vapid_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    config = {
        "http": {"bind_addresses": ["127.0.0.1"], "port": port},
        "log": {"setup": file_logging(directory / "sygnal.log")},
        "apps": {APP_ID: {
            "type": "webpush", "vapid_private_key": str(key_path),
            "vapid_contact_email": "push@example.org", "ttl": WEBPUSH_TTL_S,
        }},
    }
    return write_yaml(directory / "sygnal.yaml", config)


@dataclass
class SygnalGateway:
    """A Sygnal process on a fixed loopback port: started, stopped and started again there."""

    directory: Path
    port: int
    vapid_key: ec.EllipticCurvePrivateKey
    proc: asyncio.subprocess.Process | None = None

    @property
    def notify_url(self) -> str:
        """What a pusher's `data.url` names."""
        return f"http://127.0.0.1:{self.port}{NOTIFY_PATH}"

    @property
    def vapid_public_key(self) -> str:
        """The `k=` of the VAPID Authorization header Sygnal sends to push services."""
        return b64url(public_bytes(self.vapid_key.public_key()))

    @property
    def log_path(self) -> Path:
        return self.directory / "sygnal.log"

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_tail(self, since: int = 0) -> str:
        """The last lines Sygnal logged after byte offset `since`, and its stdout."""
        return tail_files([(self.log_path, since), (self.directory / "stdout.log", 0)])

    async def start(self) -> None:
        """Start Sygnal and wait until it answers /health."""
        assert self.proc is None or self.proc.returncode is not None, "already running"
        python = sygnal_python()
        config = write_config(self.directory, self.port, self.vapid_key)
        env = {k: v for k, v in os.environ.items() if k.lower() not in _PROXY_VARIABLES}
        with (self.directory / "stdout.log").open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                str(python), "-m", "sygnal.sygnal", cwd=self.directory,
                env={**env, "SYGNAL_CONF": str(config)},
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
            )
        await self._wait_until_up()

    async def _wait_until_up(self) -> None:
        assert self.proc is not None
        async with aiohttp.ClientSession() as http:
            await wait_until_answers(
                self.proc, http, f"http://127.0.0.1:{self.port}/health", "Sygnal",
                START_DEADLINE_S, self.log_tail,
            )

    async def stop(self) -> None:
        """SIGTERM and wait (SIGKILL if it hangs): the port refuses connections afterwards."""
        await terminate(self.proc)


@pytest.fixture(scope="module")
async def sygnal_process(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SygnalGateway]:
    """One Sygnal for the whole test module."""
    gateway = SygnalGateway(
        tmp_path_factory.mktemp("sygnal"), free_port(), ec.generate_private_key(ec.SECP256R1()),
    )
    try:
        await gateway.start()
        yield gateway
    finally:
        await gateway.stop()


@pytest.fixture
async def sygnal(sygnal_process: SygnalGateway) -> AsyncIterator[SygnalGateway]:
    """The module's Sygnal, running (a test that stopped it has it started again); at
    teardown, what it logged during the test (shown on failure)."""
    if sygnal_process.proc is None or sygnal_process.proc.returncode is not None:
        await sygnal_process.start()
    since = sygnal_process.log_size()
    yield sygnal_process
    print(f"Sygnal log during the test:\n{sygnal_process.log_tail(since)}")
