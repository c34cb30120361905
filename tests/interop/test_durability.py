"""Durability: a server killed with SIGKILL while clients send loses nothing it acknowledged.

Several senders put messages in a loop and record every event ID answered with 200. The server
process is killed mid-stream, restarted on the same config and database, and /messages must
return every acknowledged event exactly once. Clients then retry what was in flight with the same
transaction IDs, as real clients do, and still nothing is duplicated.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.helpers import MatrixApi, User
from tests.interop.conftest import ServerProcess, SpawnServer, signal_postmaster

SENDERS_PER_USER = 3
ACKS_BEFORE_KILL = 40
TXN_PREFIX = "dur"


@dataclass
class Ledger:
    """What the clients saw: acknowledged sends, and the sends whose answer never came."""

    acked: dict[tuple[str, str], str] = field(default_factory=dict)  # (token, txn) -> event ID
    in_flight: dict[tuple[str, str], str] = field(default_factory=dict)  # (token, txn) -> body
    enough: asyncio.Event = field(default_factory=asyncio.Event)


async def send(api: MatrixApi, user: User, room_id: str, txn: str, body: str) -> tuple[int, str]:
    status, resp = await api.request(
        "PUT", f"rooms/{room_id}/send/m.room.message/{txn}",
        json={"msgtype": "m.text", "body": body}, token=user.token,
    )
    return status, resp.get("event_id", "") if isinstance(resp, dict) else ""


async def sender(
    api: MatrixApi, user: User, room_id: str, name: str, ledger: Ledger
) -> None:
    """Send until the connection fails (the server was killed); record what was acknowledged."""
    for i in itertools.count():
        txn, body = f"{TXN_PREFIX}-{name}-{i}", f"{name} message {i}"
        ledger.in_flight[(user.token, txn)] = body
        try:
            status, event_id = await send(api, user, room_id, txn, body)
        except (TimeoutError, aiohttp.ClientError):
            return
        assert status == 200, (status, event_id)
        del ledger.in_flight[(user.token, txn)]
        ledger.acked[(user.token, txn)] = event_id
        if len(ledger.acked) >= ACKS_BEFORE_KILL:
            ledger.enough.set()


async def all_messages(api: MatrixApi, user: User, room_id: str) -> list[dict[str, Any]]:
    """Every m.room.message of the room, oldest first, paginating /messages backwards."""
    events: list[dict[str, Any]] = []
    params = {"dir": "b", "limit": "50"}
    while True:
        _, page = await api.request(
            "GET", f"rooms/{room_id}/messages", token=user.token, params=params
        )
        assert isinstance(page, dict) and "chunk" in page, page
        events += [e for e in page["chunk"] if e["type"] == "m.room.message"]
        if not page["chunk"] or "end" not in page:
            return events[::-1]
        params = {**params, "from": page["end"]}


async def kill_while_sending(server: ServerProcess) -> None:
    """Drive concurrent senders, SIGKILL the server mid-stream, restart it and check the room."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        api = MatrixApi(server.url, session)
        names = ("alice", "bob")
        users = [await api.register(name) for name in names]
        room_id = await api.create_room(users[0], preset="public_chat")
        await api.join(users[1], room_id)
        ledger = Ledger()
        tasks = [  # sender names go into transaction IDs, so they stay URL-safe
            asyncio.create_task(sender(api, user, room_id, f"{name}{n}", ledger))
            for name, user in zip(names, users, strict=True) for n in range(SENDERS_PER_USER)
        ]
        await asyncio.wait_for(ledger.enough.wait(), timeout=60)
        await server.kill()
        await asyncio.gather(*tasks)
    assert ledger.in_flight, "the kill should interrupt sends in flight"
    await server.start()
    await check_room(server, users, room_id, ledger)


async def check_room(
    server: ServerProcess, users: list[User], room_id: str, ledger: Ledger
) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        api = MatrixApi(server.url, session)
        events = await all_messages(api, users[0], room_id)
        ids = [e["event_id"] for e in events]
        assert len(ids) == len(set(ids)), "an event is returned twice"
        assert len(set(ledger.acked.values())) == len(ledger.acked)
        missing = set(ledger.acked.values()) - set(ids)
        assert not missing, f"{len(missing)} acknowledged events lost: {sorted(missing)[:5]}"

        # Clients retry what was in flight, with the same transaction IDs.
        by_token = {u.token: u for u in users}
        for (token, txn), body in ledger.in_flight.items():
            status, _ = await send(api, by_token[token], room_id, txn, body)
            assert status == 200
        # A retried acknowledged send answers the event it already made.
        (token, txn), event_id = next(iter(ledger.acked.items()))
        assert await send(api, by_token[token], room_id, txn, "retry") == (200, event_id)

        bodies = [e["content"]["body"] for e in await all_messages(api, users[0], room_id)]
        assert len(bodies) == len(set(bodies)), "a retried send was stored twice"
        assert set(ledger.in_flight.values()) <= set(bodies)


async def test_sigkill_with_external_database(
    spawn_server: SpawnServer, database_url: str
) -> None:
    server = await spawn_server(database_url)
    await kill_while_sending(server)


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A data directory the embedded PostgreSQL's unprivileged user can reach (tmp_path is 0700)."""
    with tempfile.TemporaryDirectory(prefix="moot-dur-", ignore_cleanup_errors=True) as name:
        Path(name).chmod(0o755)
        yield Path(name)
        # The restarted server reused a postmaster it did not start, so it left it running.
        signal_postmaster(Path(name) / "data" / "postgres", signal.SIGINT)


async def test_sigkill_with_embedded_database(open_dir: Path, spawn_server: SpawnServer) -> None:
    server = await spawn_server(None, data_dir=open_dir / "data")
    # The server process only: its postmaster survives and the restart reuses it.
    await kill_while_sending(server)
    # Now the postmaster dies too: the next start must recover the cluster after a crash.
    await server.kill()
    signal_postmaster(open_dir / "data" / "postgres", signal.SIGKILL)
    await server.start()
    async with aiohttp.ClientSession() as session:
        api = MatrixApi(server.url, session)
        status, body = await api.request(
            "POST", "login",
            json={"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"},
                  "password": "correct horse 1"},
        )
        assert status == 200, body
        rooms = await api.ok("GET", "joined_rooms", token=body["access_token"])
        assert len(rooms["joined_rooms"]) == 1
        events = await all_messages(api, User("", body["access_token"], ""),
                                    rooms["joined_rooms"][0])
        assert len(events) >= ACKS_BEFORE_KILL
