"""`moot export-user`: a user's data, filled in through the Client-Server API of a running
server, written by the CLI (a separate process, as an operator runs it) into JSON files and
copies of their media; and its refusals."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import RunningServer
from tests.helpers import MatrixApi

pytestmark = pytest.mark.usefixtures("no_server_errors")

CHECKOUT = Path(__file__).resolve().parents[2]


async def moot(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "homeserver", *args, cwd=CHECKOUT,
        env={**os.environ, "PYTHONPATH": str(CHECKOUT)}, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def read(path: Path) -> Any:
    return json.loads(path.read_text())


async def test_everything_of_the_user_lands_in_the_directory(
    homeserver: RunningServer, api: MatrixApi, tmp_path: Path
) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    await api.ok("PUT", f"profile/{quote(alice.user_id)}/displayname",
                 json={"displayname": "Alice A."}, token=alice.token)
    room_id = await api.create_room(alice, preset="public_chat", name="Export room")
    await api.join(bob, room_id)
    left = await api.create_room(alice)
    await api.ok("POST", f"rooms/{left}/leave", json={}, token=alice.token)
    hello = await api.send_message(alice, room_id, "hello from alice")
    await api.send_message(bob, room_id, "bob's, not alice's")
    await api.ok("PUT", f"user/{quote(alice.user_id)}/account_data/org.example.global",
                 json={"theme": "dark"}, token=alice.token)
    await api.ok("PUT", f"user/{quote(alice.user_id)}/rooms/{room_id}/account_data/m.tag",
                 json={"tags": {"u.work": {}}}, token=alice.token)
    await api.ok("PUT", "pushrules/global/content/cake", json={
        "pattern": "cake", "actions": ["notify"],
    }, token=alice.token)
    await api.ok("POST", "pushers/set", json={
        "kind": "http", "app_id": "org.example.app", "pushkey": "pk1",
        "app_display_name": "Example", "device_display_name": "Phone", "lang": "en",
        "data": {"url": "https://push.example.org/_matrix/push/v1/notify"},
    }, token=alice.token)
    status, upload = await api.request(
        "POST", "/_matrix/media/v3/upload", raw=b"alice's picture", token=alice.token,
        headers={"Content-Type": "text/plain"}, params={"filename": "pic.txt"},
    )
    assert status == 200, upload
    media_id = upload["content_uri"].rsplit("/", 1)[1]

    target = tmp_path / "export"
    config = str(homeserver.data_dir / "homeserver.yaml")
    code, out, err = await moot("export-user", "--config", config, alice.user_id, str(target))
    assert code == 0, err
    assert "2 rooms" in out

    assert target.stat().st_mode & 0o777 == 0o700
    profile = read(target / "profile.json")
    assert (profile["user_id"], profile["displayname"]) == (alice.user_id, "Alice A.")
    data = read(target / "account_data.json")
    assert data["global"]["org.example.global"] == {"theme": "dark"}
    assert data["rooms"][room_id]["m.tag"] == {"tags": {"u.work": {}}}
    devices = read(target / "devices.json")
    assert [d["device_id"] for d in devices] == [alice.device_id]
    assert alice.token not in (target / "devices.json").read_text()
    rooms = {r["room_id"]: r["membership"] for r in read(target / "rooms.json")}
    assert rooms == {room_id: "join", left: "leave"}
    lines = [json.loads(line) for line in (target / "events.jsonl").read_text().splitlines()]
    assert all(line["event"]["sender"] == alice.user_id for line in lines)
    assert {line["room_id"] for line in lines} == {room_id, left}
    [message] = [line for line in lines if line["event"]["type"] == "m.room.message"]
    assert message["event"]["content"]["body"] == "hello from alice"
    assert message["room_id"] == room_id and hello
    [medium] = read(target / "media.json")
    assert (medium["media_id"], medium["upload_name"]) == (media_id, "pic.txt")
    assert (target / medium["file"]).read_bytes() == b"alice's picture"
    rules = read(target / "push_rules.json")["global"]
    assert any(r["rule_id"] == "cake" for r in rules["content"])
    [pusher] = read(target / "pushers.json")
    assert (pusher["app_id"], pusher["pushkey"]) == ("org.example.app", "pk1")


@pytest.mark.parametrize("user", ["@nobody:localhost", "@alice:elsewhere.example", "alice"])
async def test_refuses_users_it_cannot_export(
    homeserver: RunningServer, api: MatrixApi, tmp_path: Path, user: str
) -> None:
    await api.register("alice")
    config = str(homeserver.data_dir / "homeserver.yaml")
    code, _, err = await moot("export-user", "--config", config, user, str(tmp_path / "out"))
    assert code == 1 and user in err, err
    assert not (tmp_path / "out").exists()


async def test_refuses_a_directory_with_files_in_it(
    homeserver: RunningServer, api: MatrixApi, tmp_path: Path
) -> None:
    alice = await api.register("alice")
    target = tmp_path / "used"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    config = str(homeserver.data_dir / "homeserver.yaml")
    code, _, err = await moot("export-user", "--config", config, alice.user_id, str(target))
    assert code == 1 and "not empty" in err, err
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
