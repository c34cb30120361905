"""The operators' tools, unmodified from PyPI, against Moot's admin API, and the same runs
against a real Synapse to show that Moot answers what they expect:

- `register_new_matrix_user` (shipped in matrix-synapse, from bench/.synapse-venv) creates an
  admin through shared-secret registration;
- synadm (bench/.synadm-venv, `make synadm`) lists the users and shows one user's details,
  lists the rooms and shows one room's details, with that admin's access token in its config
  file (its non-interactive form).

Both run as subprocesses against the servers' client listeners on loopback."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.conftest import MakeServer
from tests.helpers import PASSWORD, MatrixApi, User
from tests.synapse_peer import SYNAPSE_VENV, run_synapse, synapse_python

CHECKOUT = Path(__file__).resolve().parents[2]
SYNADM = CHECKOUT / "bench" / ".synadm-venv" / "bin" / "synadm"
SECRET = "shared-secret-for-the-tools"
TOOL_DEADLINE_S = 60.0


async def run_tool(home: Path, *argv: str) -> str:
    """Run a tool to completion (without blocking the event loop that serves Moot) and
    return what it printed; it must succeed."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=os.environ | {"HOME": str(home)},
    )
    out, err = await asyncio.wait_for(proc.communicate(), TOOL_DEADLINE_S)
    assert proc.returncode == 0, (argv, out.decode(), err.decode())
    return out.decode()


async def register_admin(home: Path, url: str, localpart: str, *flags: str) -> str:
    """`register_new_matrix_user` making `localpart` an admin with the shared secret."""
    synapse_python()  # fails with the make target to run when the venv is missing
    tool = SYNAPSE_VENV / "bin" / "register_new_matrix_user"
    return await run_tool(
        home, str(tool), "-u", localpart, "-p", PASSWORD, "-a", "-k", SECRET, *flags, url
    )


def synadm_config(home: Path, url: str, admin: User, server_name: str) -> Path:
    """synadm's config file (what its interactive `config` step would write)."""
    if not SYNADM.exists():
        pytest.fail(f"synadm is not installed at {SYNADM}: run `make synadm`", pytrace=False)
    home.mkdir(parents=True, exist_ok=True)
    path = home / "synadm.yaml"
    path.write_text(yaml.safe_dump({
        "user": admin.user_id, "token": admin.token, "protocol": "http", "base_url": url,
        "admin_path": "/_synapse/admin", "matrix_path": "/_matrix", "timeout": 30,
        "server_discovery": "well-known", "homeserver": server_name, "ssl_verify": False,
        "format": "json",
    }))
    return path


async def synadm(home: Path, config: Path, *args: str) -> Any:
    return json.loads(await run_tool(home, str(SYNADM), "-c", str(config), "-o", "json", *args))


async def tools_on(
    home: Path, url: str, server_name: str, http: aiohttp.ClientSession
) -> dict[str, Any]:
    """The tools' run against one server: an admin made by the shared secret, a user made
    through the client API with a room, then synadm's user list, that user's details, the
    room list and that room's details (by the command's name)."""
    assert "Success!" in await register_admin(home.parent, url, "ops")
    api = MatrixApi(url, http)
    ops = await api.login(User(f"@ops:{server_name}", "", "", PASSWORD))
    alice = await api.register("alice")
    room = await api.create_room(alice, name="Ops review", preset="public_chat")
    config = synadm_config(home, url, ops, server_name)
    listing = await synadm(home, config, "user", "list")
    details = await synadm(home, config, "user", "details", alice.user_id)
    rooms = await synadm(home, config, "room", "list")
    room_details = await synadm(home, config, "room", "details", room)
    assert listing["total"] == 2
    assert {(u["name"], u["admin"]) for u in listing["users"]} == {
        (ops.user_id, True), (alice.user_id, False)
    }
    assert details["name"] == alice.user_id and details["displayname"] == "alice"
    assert (details["admin"], details["deactivated"]) == (False, False)
    assert rooms["total_rooms"] == 1
    assert [(r["room_id"], r["name"], r["joined_members"]) for r in rooms["rooms"]] == [
        (room, "Ops review", 1)
    ]
    assert (room_details["room_id"], room_details["creator"]) == (room, alice.user_id)
    assert (room_details["join_rules"], room_details["public"]) == ("public", False)
    return {"users": listing, "user": details, "rooms": rooms, "room": room_details}


@pytest.mark.synapse
async def test_operators_tools_on_moot_and_synapse(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    moot = await make_homeserver({"registration.shared_secret": SECRET})
    on_moot = await tools_on(tmp_path / "moot", moot.url, moot.server_name, http)
    # The tool's --exists-ok reads M_USER_IN_USE as "already there".
    again = await register_admin(tmp_path, moot.url, "ops", "--exists-ok")
    assert "User already exists" in again

    extra = {"registration_shared_secret": SECRET}
    async with run_synapse(tmp_path / "synapse", extra) as synapse:
        on_synapse = await tools_on(
            tmp_path / "synapse-home", synapse.client_url, synapse.server_name, http
        )
    # Moot answers every field Synapse does (and what synadm printed is Synapse's shape).
    for answer in ("users", "user", "rooms", "room"):
        assert set(on_synapse[answer]) <= set(on_moot[answer]), answer
    for listing in ("users", "rooms"):
        assert set(on_synapse[listing][listing][0]) <= set(on_moot[listing][listing][0])
