"""A real Synapse, installed from PyPI, running as a federation peer of Moot servers in tests.

Synapse lives in its own virtualenv (`bench/.synapse-venv`, made by `make synapse`, which
`make test` runs first) and runs as a subprocess on loopback: server name
`127.0.0.1:<federation port>` so that peers connect straight to it (no discovery), a TLS
federation listener with a self-signed certificate, a plain HTTP client listener, SQLite in the
test's directory, registration open and rate limits off, outbound connections to loopback
allowed, no trusted key servers. Starting takes seconds, so test modules share one Synapse
(module scope) and keep their tests independent with fresh users.

`tests/conftest.py` registers this module as a plugin, so any test can name the `synapse`
fixture. It prints what Synapse logged during the test at teardown, which pytest
shows only for a failing test.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from homeserver.protocol.signing import SigningKey, generate_signing_key, write_signing_keys
from homeserver.setup import write_tls_certificate
from tests.federation_helpers import free_port
from tests.federation_peers import Peer, Peers
from tests.helpers import MatrixApi, User
from tests.peer_process import (
    LOG_TAIL_LINES,
    file_logging,
    tail_files,
    terminate,
    wait_until_answers,
    write_yaml,
)

CHECKOUT = Path(__file__).resolve().parents[1]
SYNAPSE_VENV = CHECKOUT / "bench" / ".synapse-venv"
INSTALL_HINT = "run `make synapse` (`make test` does it before pytest)"
START_DEADLINE_S = 120.0
_USER_NUMBERS = itertools.count()  # user names unique however many tests share one Synapse

# Synapse's rate limits, each lifted far beyond anything a test does. The nested ones are
# groups of limits under one key (e.g. rc_login's address/account/failed_attempts).
_UNLIMITED = {"per_second": 100_000, "burst_count": 1_000_000}
_RATE_LIMITS: dict[str, tuple[str, ...]] = {
    "rc_message": (), "rc_registration": (), "rc_registration_token_validity": (),
    "rc_joins_per_room": (), "rc_3pid_validation": (), "rc_admin_redaction": (),
    "rc_room_creation": (), "rc_delayed_event_mgmt": (), "rc_reports": (),
    "rc_media_create": (), "rc_key_requests": (), "rc_third_party_invite": (),
    "rc_user_directory": (), "rc_profile": (),
    "rc_login": ("address", "account", "failed_attempts"),
    "rc_joins": ("local", "remote"),
    "rc_invites": ("per_room", "per_user", "per_issuer"),
    "rc_presence": ("per_user",),
}


def synapse_python() -> Path:
    """The venv's interpreter; without it the test fails (never skips) naming the make target."""
    python = SYNAPSE_VENV / "bin" / "python"
    if not python.exists():
        pytest.fail(f"Synapse is not installed in {SYNAPSE_VENV}: {INSTALL_HINT}", pytrace=False)
    return python


def _rate_limits() -> dict[str, Any]:
    """``rc_*`` settings with every limit (and every limit of a group) lifted."""
    return {
        key: {part: _UNLIMITED for part in parts} if parts else _UNLIMITED
        for key, parts in _RATE_LIMITS.items()
    } | {
        # Inbound federation requests per origin: neither delayed nor refused.
        "rc_federation": {"sleep_limit": 100_000, "reject_limit": 100_000, "concurrent": 100},
    }


def write_config(
    directory: Path, federation_port: int, client_port: int, signing_key: SigningKey,
    extra: Mapping[str, Any] | None = None, listen_port: int | None = None,
) -> Path:
    """Synapse's homeserver.yaml, log config, signing key and TLS certificate in ``directory``;
    ``extra`` adds top-level settings (e.g. ``app_service_config_files``); ``listen_port``:
    where its federation listener listens, when not on the port that names it (a relay's).

    The key file has the format both servers share, so the test knows Synapse's key."""
    server_name = f"127.0.0.1:{federation_port}"
    directory.mkdir(parents=True, exist_ok=True)
    key_path = directory / "signing.key"
    key_path.write_text(write_signing_keys([signing_key]))
    cert, key = directory / "tls.crt", directory / "tls.key"
    write_tls_certificate(cert, key, server_name)
    log_config = write_yaml(directory / "log.yaml", file_logging(directory / "homeserver.log"))
    loopback = {"bind_addresses": ["127.0.0.1"], "type": "http", "x_forwarded": False}
    config: dict[str, Any] = {
        "server_name": server_name,
        "pid_file": str(directory / "homeserver.pid"),
        "listeners": [
            {"port": listen_port or federation_port, "tls": True, **loopback,
             "resources": [{"names": ["federation"], "compress": False}]},
            {"port": client_port, "tls": False, **loopback,
             "resources": [{"names": ["client"], "compress": False}]},
        ],
        "tls_certificate_path": str(cert),
        "tls_private_key_path": str(key),
        "database": {"name": "sqlite3", "args": {"database": str(directory / "homeserver.db")}},
        "log_config": str(log_config),
        "media_store_path": str(directory / "media"),
        "signing_key_path": str(key_path),
        "report_stats": False,
        # Peers are Moot servers on loopback with self-signed certificates, found by IP literal.
        # An empty blocklist, not `ip_range_whitelist`: Synapse checks a server name that is an
        # IP literal against the blocklist alone (its BlocklistingAgentWrapper).
        "federation_verify_certificates": False,
        "ip_range_blacklist": [],
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "macaroon_secret_key": os.urandom(16).hex(),
        "form_secret": os.urandom(16).hex(),
        "enable_registration": True,
        "enable_registration_without_verification": True,
        "bcrypt_rounds": 4,  # registration is set-up, not what is tested
        "presence": {"enabled": True},
        # The spec's `counts.unread` in a push: unread messages, not Synapse's default of rooms.
        "push": {"group_unread_count_by_room": False},
        "use_frozen_dicts": False,
        **_rate_limits(),
        **(extra or {}),
    }
    return write_yaml(directory / "homeserver.yaml", config)


@dataclass
class SynapsePeer:
    """A running Synapse: its names and URLs, a client-API helper, and its log."""

    directory: Path
    federation_port: int
    client_port: int
    http: aiohttp.ClientSession
    signing_key: SigningKey = field(default_factory=lambda: generate_signing_key("a_synapse"))
    extra_config: Mapping[str, Any] | None = None
    listen_port: int | None = None  # the federation listener's, when not federation_port
    proc: asyncio.subprocess.Process | None = None
    startup_s: float | None = None

    @property
    def server_name(self) -> str:
        return f"127.0.0.1:{self.federation_port}"

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def federation_url(self) -> str:
        return f"https://127.0.0.1:{self.federation_port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "homeserver.log"

    @property
    def api(self) -> MatrixApi:
        """A client of Synapse's client API."""
        return MatrixApi(self.client_url, self.http)

    async def new_user(self, localpart: str) -> User:
        """A new user named ``localpart`` and a number: one Synapse serves a module's tests,
        each of which registers its own users."""
        return await self.api.register(f"{localpart}{next(_USER_NUMBERS)}")

    async def register(self, localpart: str) -> tuple[str, str]:
        """A new user (open registration, the dummy stage): (user ID, access token)."""
        user = await self.api.register(localpart)
        return user.user_id, user.token

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_tail(self, since: int = 0, lines: int = LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines Synapse logged after byte offset ``since``, and its stdout."""
        return tail_files([(self.log_path, since), (self.directory / "stdout.log", 0)], lines)

    async def start(self) -> None:
        """Start Synapse and wait until its client API answers /versions."""
        python = synapse_python()
        config = write_config(
            self.directory, self.federation_port, self.client_port, self.signing_key,
            self.extra_config, self.listen_port,
        )
        started = time.monotonic()
        with (self.directory / "stdout.log").open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                str(python), "-m", "synapse.app.homeserver", "-c", str(config),
                cwd=self.directory, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
            )
        await self._wait_until_up()
        self.startup_s = time.monotonic() - started

    async def _wait_until_up(self) -> None:
        assert self.proc is not None
        await wait_until_answers(
            self.proc, self.http, self.client_url + "/_matrix/client/versions", "Synapse",
            START_DEADLINE_S, self.log_tail,
        )

    async def stop(self) -> None:
        """SIGTERM and wait (SIGKILL if it hangs)."""
        await terminate(self.proc)


@asynccontextmanager
async def run_synapse(
    directory: Path, extra_config: Mapping[str, Any] | None = None,
    federation_port: int | None = None, listen_port: int | None = None,
) -> AsyncIterator[SynapsePeer]:
    """A Synapse on free loopback ports (or the given federation port, which names it; its
    listener on `listen_port` if given) with its files in ``directory`` and ``extra_config`` in
    its homeserver.yaml, stopped on exit."""
    async with aiohttp.ClientSession() as http:
        peer = SynapsePeer(
            directory, federation_port or free_port(), free_port(), http,
            extra_config=extra_config, listen_port=listen_port,
        )
        try:
            await peer.start()
            yield peer
        finally:
            await peer.stop()


@pytest.fixture(scope="module")
async def synapse_process(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SynapsePeer]:
    """One Synapse for the whole test module (it takes seconds to start)."""
    async with run_synapse(tmp_path_factory.mktemp("synapse")) as peer:
        print(f"Synapse started in {peer.startup_s:.2f} s")
        yield peer


@pytest.fixture
async def synapse(synapse_process: SynapsePeer) -> AsyncIterator[SynapsePeer]:
    """The module's Synapse; at teardown, what it logged during the test (shown on failure)."""
    since = synapse_process.log_size()
    yield synapse_process
    print(f"Synapse log during the test:\n{synapse_process.log_tail(since)}")



async def moot_and_synapse_users(
    peers: Peers, http: aiohttp.ClientSession, synapse: SynapsePeer
) -> tuple[Peer, MatrixApi, User, User]:
    """A Moot server, its client API and its user Alice, and Bob, a user of `synapse`."""
    moot = await peers.new("moot")
    api = moot.api(http)
    return moot, api, await api.register("alice"), await synapse.new_user("bob")
