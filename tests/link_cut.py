"""Cutting the link between two federating servers for a while, and what their clients then
see of a room's state.

`TcpRelay` listens on a server's federation port (the port its server name names) and passes
every connection on to where the server really listens. `cut()` closes the connections under
way and refuses new ones (accepted, then closed at once: the peer's request fails as it would
against a server that is down); `mend()` lets them through again. A server behind a relay is
reachable only through it, so cutting the relays of both servers of a room cuts the link both
ways, and each keeps what it sends meanwhile in its outbox.

`SyncedState` is a client's idea of one room's state, kept from /sync responses by the rules a
client follows: with `use_state_after`, from `state_after` alone; without it, from `state` and
then the timeline.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from tests.federation_helpers import free_port
from tests.federation_peers import Peer, Peers
from tests.helpers import MatrixApi, User

_CHUNK = 64 * 1024
# How soon after the link is mended both servers must agree (issue 16).
CONVERGENCE_DEADLINE_S = 60.0


class TcpRelay:
    def __init__(self, port: int, target_port: int) -> None:
        self.port = port
        self.target_port = target_port
        self.open = True
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> TcpRelay:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        return self

    def cut(self) -> None:
        self.open = False
        for writer in list(self._links):
            writer.close()

    def mend(self) -> None:
        self.open = True

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._links |= {writer, up_writer}
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer)),
            asyncio.create_task(self._pump(up_reader, writer)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
            for w in (writer, up_writer):
                self._links.discard(w)
                w.close()
            self._tasks.difference_update(pumps)

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, OSError):
            while chunk := await reader.read(_CHUNK):
                writer.write(chunk)
                await writer.drain()


@dataclass
class SyncedState:
    """One room's state as a client holding `since` knows it: key -> event."""

    api: MatrixApi
    user: User
    room_id: str
    state_after: bool
    # The query parameter and response key of `use_state_after` (Synapse has only MSC4222's).
    after_names: tuple[str, str] = ("use_state_after", "state_after")
    since: str | None = None
    state: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    filter: str | None = None  # a filter's JSON, to sync through it

    async def sync(self) -> None:
        params: dict[str, Any] = {"timeout": 0}
        if self.filter is not None:
            params["filter"] = self.filter
        if self.since is not None:
            params["since"] = self.since
        if self.state_after:
            params[self.after_names[0]] = "true"
        body = await self.api.sync(self.user, **params)
        self.since = body["next_batch"]
        room = body.get("rooms", {}).get("join", {}).get(self.room_id)
        if room is None:
            return
        if self.state_after:
            assert "state" not in room, room
            events = room.get(self.after_names[1], {}).get("events", [])
        else:
            events = [*room.get("state", {}).get("events", []),
                      *room.get("timeline", {}).get("events", [])]
        for event in events:
            if isinstance(event.get("state_key"), str):
                self.state[(event["type"], event["state_key"])] = event

    def content(self, event_type: str, state_key: str = "") -> dict[str, Any] | None:
        event = self.state.get((event_type, state_key))
        return None if event is None else event["content"]


async def cuttable_moots(peers: Peers) -> tuple[Peer, Peer, list[TcpRelay]]:
    """Two Moot servers, each reachable only through its own relay (stopped with them)."""
    pair: list[Peer] = []
    relays: list[TcpRelay] = []
    for label in ("a", "b"):
        listen = free_port()
        peer = await peers.new(label, listen_port=listen)
        relay = await TcpRelay(peer.port, listen).start()
        peers.stack.push_async_callback(relay.stop)
        pair.append(peer)
        relays.append(relay)
    return pair[0], pair[1], relays


async def current_name(api: MatrixApi, user: User, room_id: str) -> str | None:
    """The room's name as the user's server holds it now (None: no name)."""
    status, body = await api.request(
        "GET", f"rooms/{quote(room_id)}/state/m.room.name/", token=user.token
    )
    assert status in (200, 404), (status, body)
    name = body.get("name") if status == 200 else None
    return name if isinstance(name, str) else None


async def holds(api: MatrixApi, user: User, room_id: str, event_ids: list[str]) -> bool:
    """Whether the user's server has every one of the room's `event_ids`."""
    for event_id in event_ids:
        status, _ = await api.request(
            "GET", f"rooms/{quote(room_id)}/event/{quote(event_id)}", token=user.token
        )
        if status != 200:
            return False
    return True
