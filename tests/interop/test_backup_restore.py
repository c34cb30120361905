"""`moot backup` of a running server and `moot restore` into a new data directory and a new
database, as an operator moving to a fresh machine would, with the external PostgreSQL and with
the embedded one; then the restored server is started and everything is read back over HTTP.
`moot reset-after-restore` does the restore's reset alone.

The one-time keys: a key claimed after the backup is offered again by the restored database
unless the restore forgets it; the test claims one in between and checks that the restored
server offers none and reports a count of 0, so that the device uploads new ones.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.conftest import throwaway_database
from tests.helpers import MatrixApi, User
from tests.interop.conftest import CHECKOUT, ServerProcess, SpawnServer, port_overrides
from tests.olm_device import OTK_ALGORITHM, OlmDevice

MEDIA = os.urandom(300_000)  # bytes that no other upload shares (the store deduplicates)
MESSAGES = ("before the backup 1", "before the backup 2", "before the backup 3")


def moot(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m homeserver ARGS`, run to completion."""
    return subprocess.run(
        [sys.executable, "-m", "homeserver", *args], capture_output=True, text=True,
        cwd=CHECKOUT, timeout=300, stdin=subprocess.DEVNULL,
    )


@dataclass
class Filled:
    """What the original server held at the backup."""

    alice: User
    device: OlmDevice
    room_id: str
    media_uri: str
    server_keys: dict[str, Any]
    device_keys: dict[str, Any]


def listener_port(config_path: Path, listener: str) -> int:
    port: int = yaml.safe_load(config_path.read_text())["listeners"][listener]["port"]
    return port


async def server_keys(session: aiohttp.ClientSession, config_path: Path) -> dict[str, Any]:
    """The verify keys the server publishes at /_matrix/key/v2/server (federation listener)."""
    port = listener_port(config_path, "federation")
    async with session.get(f"https://127.0.0.1:{port}/_matrix/key/v2/server", ssl=False) as resp:
        assert resp.status == 200
        keys: dict[str, Any] = (await resp.json())["verify_keys"]
        return keys


async def fill(api: MatrixApi, config_path: Path) -> Filled:
    alice = await api.register("alice")
    device = OlmDevice(api, alice)
    uploaded = await device.upload_ok(
        device_keys=device.device_keys(), one_time_keys=device.one_time_keys(5),
        fallback_keys=device.fallback_key(),
    )
    assert uploaded["one_time_key_counts"][OTK_ALGORITHM] == 5
    room_id = await api.create_room(alice, name="kept")
    for text in MESSAGES:
        await api.send_message(alice, room_id, text)
    media = await api.ok("POST", "/_matrix/media/v3/upload", raw=MEDIA, token=alice.token,
                         headers={"Content-Type": "application/octet-stream"})
    return Filled(alice, device, room_id, media["content_uri"],
                  await server_keys(api.session, config_path), device.device_keys())


async def read_back(api: MatrixApi, filled: Filled, config_path: Path) -> None:
    """Everything the original held at the backup is there, and no one-time key is."""
    relogged = await api.login(filled.alice)  # the password survived
    messages = await api.ok(
        "GET", f"rooms/{filled.room_id}/messages", token=relogged.token,
        params={"dir": "b", "limit": "50"},
    )
    texts = [e["content"]["body"] for e in messages["chunk"] if e["type"] == "m.room.message"]
    assert texts == list(reversed(MESSAGES))  # and not the message sent after the backup

    async with api.session.get(
        f"{api.base_url}/_matrix/client/v1/media/download/{filled.media_uri[len('mxc://'):]}",
        headers={"Authorization": f"Bearer {relogged.token}"},
    ) as resp:
        assert resp.status == 200
        assert await resp.read() == MEDIA

    assert await server_keys(api.session, config_path) == filled.server_keys

    queried = await api.ok(
        "POST", "keys/query", json={"device_keys": {filled.alice.user_id: []}},
        token=relogged.token,
    )
    device = queried["device_keys"][filled.alice.user_id][filled.alice.device_id]
    device.pop("unsigned", None)  # the server's additions (display name)
    assert device == filled.device_keys

    # The old device's access token is in the backup; its keys to hand out are not.
    synced = await api.sync(filled.alice)
    assert synced["device_one_time_keys_count"].get(OTK_ALGORITHM, 0) == 0
    assert synced["device_unused_fallback_key_types"] == []
    claimed = await api.ok(
        "POST", "keys/claim", json={"one_time_keys": filled.device.wanted()},
        token=relogged.token,
    )
    assert claimed["one_time_keys"].get(filled.alice.user_id, {}) == {}


def assert_private(backup_dir: Path) -> None:
    """No other local user can enter the backup: it holds the signing key, the config and the
    database's password hashes and access tokens (pg_dump writes with the umask's mode)."""
    mode = backup_dir.stat().st_mode
    assert mode & 0o077 == 0, oct(mode)
    assert (backup_dir / "database.dump").exists()


def outbox_floor(stdout: str) -> int:
    """The position federation transactions continue from, as restore reports it."""
    found = re.search(r"federation transactions continue from position (\d+)", stdout)
    assert found, stdout
    return int(found[1])


def restored_config(backup_dir: Path, data_dir: Path, database_url: str | None) -> Path:
    """The fresh machine's config: the backup's, with its own ports and database."""
    raw = yaml.safe_load((backup_dir / "homeserver.yaml").read_text())
    for dotted, value in {**port_overrides(), "database.url": database_url}.items():
        section, *middle, leaf = dotted.split(".")
        node = raw[section]
        for key in middle:
            node = node[key]
        node[leaf] = value
    data_dir.mkdir()
    path = data_dir / "homeserver.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(params=["external", "embedded"])
async def setups(
    request: pytest.FixtureRequest, database_url: str, postgres_dsn: str
) -> AsyncIterator[tuple[str | None, str | None]]:
    """(the original's database, the restore's empty database): both on the external
    PostgreSQL, or both None for the embedded one in each data directory."""
    if request.param == "embedded":
        yield None, None
        return
    async with throwaway_database(postgres_dsn, template=None) as empty:
        yield database_url, empty


async def test_backup_while_running_and_restore_into_a_new_data_directory(
    spawn_server: SpawnServer, setups: tuple[str | None, str | None], tmp_path: Path
) -> None:
    original_db, restored_db = setups
    original = await spawn_server(original_db)
    backup_dir = tmp_path / "backup"
    backup_dir.mkdir(mode=0o755)  # made by the operator beforehand, with the usual mode
    backup_dir.chmod(0o755)
    async with aiohttp.ClientSession() as session:
        api = MatrixApi(original.url, session)
        filled = await fill(api, original.config_path)

        made = moot("backup", "--config", str(original.config_path), str(backup_dir))
        assert made.returncode == 0, made.stderr
        assert_private(backup_dir)
        assert original.proc is not None and original.proc.returncode is None  # still serving

        # After the backup: a key handed out, a message sent. Neither is in the backup.
        bob = await api.register("bob")
        claimed = await api.ok("POST", "keys/claim", token=bob.token,
                               json={"one_time_keys": filled.device.wanted()})
        assert claimed["one_time_keys"][filled.alice.user_id]
        await api.send_message(filled.alice, filled.room_id, "after the backup")
    assert await original.stop() == 0

    config = restored_config(backup_dir, tmp_path / "fresh", restored_db)
    result = moot("restore", "--config", str(config), str(backup_dir))
    assert result.returncode == 0, result.stderr
    assert "forgot 5 one-time and 1 fallback keys" in result.stdout
    made_ts = json.loads((backup_dir / "manifest.json").read_text())["created_ts"]
    assert outbox_floor(result.stdout) >= made_ts * 1000
    again = moot("restore", "--config", str(config), str(backup_dir))
    assert again.returncode == 1 and "not empty" in again.stderr

    restored = ServerProcess(config, tmp_path / "restored.log", listener_port(config, "client"))
    await restored.start()
    try:
        async with aiohttp.ClientSession() as session:
            await read_back(MatrixApi(restored.url, session), filled, config)
    finally:
        assert await restored.stop() == 0, restored.log_tail()


def test_restore_refuses_a_backup_of_another_server(tmp_path: Path) -> None:
    (tmp_path / "backup").mkdir()
    (tmp_path / "backup" / "manifest.json").write_text(
        '{"format": 1, "server_name": "other.example", "created_ts": 0, "schema_version": 1,'
        ' "pg_dump_major": 15, "media_files": 0, "key_files": []}'
    )
    init = moot("init", "--data-dir", str(tmp_path / "hs"), "--server-name", "mine.example")
    assert init.returncode == 0, init.stderr
    result = moot("restore", "--config", str(tmp_path / "hs" / "homeserver.yaml"),
                  str(tmp_path / "backup"))
    assert result.returncode == 1
    assert "'other.example'" in result.stderr and "cannot change" in result.stderr


async def test_reset_after_restore_forgets_the_keys_of_a_database_restored_otherwise(
    spawn_server: SpawnServer, database_url: str
) -> None:
    server = await spawn_server(database_url)
    async with aiohttp.ClientSession() as session:
        api = MatrixApi(server.url, session)
        alice = await api.register("alice")
        device = OlmDevice(api, alice)
        await device.upload_ok(device_keys=device.device_keys(),
                               one_time_keys=device.one_time_keys(3))
        assert await server.stop() == 0

        result = moot("reset-after-restore", "--config", str(server.config_path))
        assert result.returncode == 0, result.stderr
        assert "forgot 3 one-time and 0 fallback keys" in result.stdout
        assert outbox_floor(result.stdout) > 0

        await server.start()
        synced = await api.sync(alice)
        assert synced["device_one_time_keys_count"].get(OTK_ALGORITHM, 0) == 0
