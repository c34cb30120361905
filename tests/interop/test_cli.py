"""The CLI contract that scripts and operators depend on, run as real processes.

`init` writes a commented config, a signing key and a TLS certificate; `migrate` brings a database
up and refuses one newer than the code; `register-user` reads the password from stdin; `run`
stops gracefully on SIGTERM; the `moot` console script offers the same subcommands.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
import yaml
from cryptography import x509

from homeserver.config import load_config
from storage.migrations import available_migrations
from tests.conftest import throwaway_database
from tests.helpers import MatrixApi
from tests.interop.conftest import CHECKOUT, SpawnServer

SUBCOMMANDS = (
    "init", "run", "migrate", "register-user", "backup", "restore", "reset-after-restore",
    "export-user",
)
NAME = "example.test:8448"


def moot(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run `python -m homeserver ARGS` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "homeserver", *args], input=stdin, capture_output=True,
        text=True, cwd=CHECKOUT, timeout=60,
    )


def init(data_dir: Path, *flags: str) -> Path:
    result = moot("init", "--data-dir", str(data_dir), "--server-name", NAME, *flags)
    assert result.returncode == 0, result.stderr
    return data_dir / "homeserver.yaml"


def test_init_writes_a_commented_config_with_safe_defaults(tmp_path: Path) -> None:
    path = init(tmp_path)
    text = path.read_text()
    assert "# Moot homeserver configuration." in text
    assert "# The name in every user ID" in text
    raw = yaml.safe_load(text)
    assert raw["server"]["server_name"] == NAME
    assert raw["registration"]["enabled"] is False
    assert raw["rate_limits"]["enabled"] is True
    config = load_config(path)
    assert config.listeners.client.port == 8008
    assert config.listeners.federation.port == 8448
    assert config.database.url is None


def test_init_flags_set_their_values(tmp_path: Path) -> None:
    dsn = "postgresql://moot@db.example.test:5432/moot"
    path = init(
        tmp_path, "--client-port", "18008", "--federation-port", "18448", "--metrics-port",
        "19108", "--database-url", dsn, "--open-registration", "--no-rate-limits",
    )
    assert "# Moot homeserver configuration." in path.read_text()
    config = load_config(path)
    assert config.server.server_name == NAME
    assert config.listeners.client.port == 18008
    assert config.listeners.federation.port == 18448
    assert config.listeners.metrics.port == 19108
    assert config.database.url == dsn
    assert config.registration.enabled is True
    assert config.rate_limits.enabled is False


def test_init_writes_keys_and_keeps_the_signing_key(tmp_path: Path) -> None:
    init(tmp_path)
    key_file = tmp_path / "signing.key"
    algorithm, version, seed = key_file.read_text().split()
    assert algorithm == "ed25519"
    assert version.startswith("a_")
    assert len(base64.b64decode(seed + "=" * (-len(seed) % 4))) == 32
    assert key_file.stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate((tmp_path / "tls.crt").read_bytes())
    assert "example.test" in cert.subject.rfc4514_string()
    assert b"PRIVATE KEY" in (tmp_path / "tls.key").read_bytes()

    before = key_file.read_text()
    init(tmp_path, "--open-registration")
    assert key_file.read_text() == before
    assert load_config(tmp_path / "homeserver.yaml").registration.enabled is True


@pytest.fixture
async def empty_database(postgres_dsn: str) -> AsyncIterator[str]:
    """A database with no schema at all (not cloned from the migrated template)."""
    async with throwaway_database(postgres_dsn, template=None) as url:
        yield url


async def test_migrate_applies_and_refuses_a_newer_database(
    tmp_path: Path, empty_database: str
) -> None:
    config = init(tmp_path, "--database-url", empty_database)
    result = moot("migrate", "--config", str(config))
    assert result.returncode == 0, result.stderr
    conn = await asyncpg.connect(empty_database)
    try:
        versions = await conn.fetch("SELECT version FROM schema_version ORDER BY version")
        assert [r["version"] for r in versions] == [m.version for m in available_migrations()]
        assert moot("migrate", "--config", str(config)).returncode == 0  # idempotent

        newer = available_migrations()[-1].version + 1
        await conn.execute(
            "INSERT INTO schema_version (version, name) VALUES ($1, 'from_the_future')", newer
        )
    finally:
        await conn.close()
    result = moot("migrate", "--config", str(config))
    assert result.returncode != 0
    assert "newer" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


async def test_register_user_reads_the_password_from_stdin(
    spawn_server: SpawnServer, database_url: str
) -> None:
    help_text = moot("register-user", "--help").stdout
    assert "--admin" in help_text and "password" not in help_text.replace("(password from", "")
    server = await spawn_server(database_url, overrides={"registration.enabled": False})
    password = "s3cret from stdin"
    result = moot(
        "register-user", "--config", str(server.config_path), "alice", "--admin",
        stdin=password + "\n",
    )
    assert result.returncode == 0, result.stderr
    assert "@alice:localhost" in result.stdout
    assert password not in result.stdout + result.stderr

    async with aiohttp.ClientSession() as session:
        api = MatrixApi(server.url, session)
        status, body = await api.request(
            "POST", "login",
            json={"type": "m.login.password",
                  "identifier": {"type": "m.id.user", "user": "alice"}, "password": password},
        )
        assert status == 200, body
        assert body["user_id"] == "@alice:localhost"
    conn = await asyncpg.connect(database_url)
    try:
        admin = await conn.fetchval("SELECT is_admin FROM users WHERE user_id = $1",
                                    "@alice:localhost")
    finally:
        await conn.close()
    assert admin is True


def test_register_user_refuses_an_empty_password(tmp_path: Path) -> None:
    config = init(tmp_path, "--database-url", "postgresql://nobody@127.0.0.1:1/none")
    result = moot("register-user", "--config", str(config), "bob", stdin="\n")
    assert result.returncode != 0
    assert "empty password" in result.stderr


def test_console_script_lists_the_subcommands() -> None:
    script = Path(sys.executable).parent / "moot"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for name in SUBCOMMANDS:
        assert name in result.stdout


async def test_run_stops_gracefully_on_sigterm(
    spawn_server: SpawnServer, database_url: str
) -> None:
    server = await spawn_server(database_url)
    assert await server.stop() == 0, server.log_tail()
    assert "Moot stopped" in server.log_tail()
