"""matrix-nio clients with encryption on (one device each, its own crypto store): what a device
received through /sync, and conversations in encrypted rooms that must decrypt both ways.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nio

from tests.helpers import PASSWORD
from tests.nio_clients import ok

TEST_DEADLINE_S = 180.0
SYNC_DEADLINE_S = 30.0
SYNC_TIMEOUT_MS = 1_000
ENCRYPTION = {
    "type": "m.room.encryption", "state_key": "",
    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
}


@dataclass
class Device:
    """One nio client (one device) and what it has received through /sync."""

    client: nio.AsyncClient
    texts: dict[str, nio.RoomMessageText] = field(default_factory=dict)
    undecrypted: list[nio.MegolmEvent] = field(default_factory=list)
    room_keys: set[str] = field(default_factory=set)  # Megolm session IDs received
    # Messages sent before this (server time, ms) may stay undecryptable: the history a room
    # shows a new member was encrypted before anyone shared its keys with them.
    joined_ms: int = 0

    def __post_init__(self) -> None:
        self.client.add_event_callback(self._on_text, nio.RoomMessageText)
        self.client.add_event_callback(self._on_undecrypted, nio.MegolmEvent)
        self.client.add_to_device_callback(self._on_room_key, nio.RoomKeyEvent)

    async def _on_text(self, room: nio.MatrixRoom, event: nio.RoomMessageText) -> None:
        self.texts[event.body] = event

    async def _on_undecrypted(self, room: nio.MatrixRoom, event: nio.MegolmEvent) -> None:
        if event.server_timestamp >= self.joined_ms:
            self.undecrypted.append(event)

    async def _on_room_key(self, event: nio.RoomKeyEvent) -> None:
        self.room_keys.add(event.session_id)

    @property
    def user_id(self) -> str:
        user_id: str = self.client.user_id
        return user_id

    async def sync(self, timeout_ms: int = SYNC_TIMEOUT_MS) -> None:
        """One /sync, then the key maintenance a client does after it (upload, query)."""
        client = self.client
        ok(await client.sync(timeout=timeout_ms), f"{self.user_id} sync")
        if client.should_upload_keys:
            ok(await client.keys_upload(), f"{self.user_id} keys_upload")
        if client.should_query_keys:
            ok(await client.keys_query(), f"{self.user_id} keys_query")

    async def sync_until(self, done: Callable[[Device], bool], what: str) -> None:
        deadline = time.monotonic() + SYNC_DEADLINE_S
        while not done(self):
            assert time.monotonic() < deadline, f"{self.user_id}: never saw {what}"
            await self.sync()

    async def send(self, room_id: str, text: str) -> None:
        ok(await self.client.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": text},
            ignore_unverified_devices=True,
        ), f"{self.user_id} room_send")

    async def decrypts(self, text: str) -> nio.RoomMessageText:
        """Sync until `text` arrives decrypted; fail if it arrives but cannot be decrypted."""
        await self.sync_until(lambda d: text in d.texts or bool(d.undecrypted), repr(text))
        assert not self.undecrypted, f"{self.user_id} could not decrypt {self.undecrypted}"
        return self.texts[text]

    def session_of(self, room_id: str) -> str:
        """The ID of this device's current outbound Megolm session in the room."""
        session_id: str = self.client.olm.outbound_group_sessions[room_id].id
        return session_id


async def register(device: Device) -> Device:
    client = device.client
    ok(await client.register(client.user, PASSWORD, "nio"), "register")
    await device.sync()  # the first sync uploads the device keys and one-time keys
    return device


async def raw(client: nio.AsyncClient, method: str, path: str, body: Any) -> Any:
    """A plain Client-Server request with the client's token (for what nio lacks)."""
    async with client.client_session.request(
        method, f"{client.homeserver}/_matrix/client/v3/{path}", json=body,
        headers={"Authorization": f"Bearer {client.access_token}"},
    ) as resp:
        result = await resp.json()
        assert resp.status == 200, (path, resp.status, result)
        return result


def nio_device(client_url: str, localpart: str, store: Path) -> Device:
    """A nio client with encryption on and its own crypto store, for a server's client API."""
    store.mkdir(parents=True)
    config = nio.AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True)
    return Device(nio.AsyncClient(client_url, localpart, store_path=str(store), config=config))


async def converse(alice: Device, bob: Device, room_id: str, via: str) -> None:
    """Bob (on another server) joins Alice's encrypted room through `via`; then a message each
    way must decrypt."""
    await raw(bob.client, "POST", f"join/{room_id}?server_name={via}", {})
    await talk(alice, bob, room_id)


async def talk(alice: Device, bob: Device, room_id: str) -> None:
    """Once Bob has joined Alice's encrypted room, a message each way must decrypt: device
    lists, key claims and the room keys crossed the federation."""
    await bob.sync_until(lambda d: room_id in d.client.rooms, "the joined room")
    await alice.sync_until(
        lambda d: room_id in d.client.rooms and bob.user_id in d.client.rooms[room_id].users,
        "Bob in the room",
    )
    # Both know the room is encrypted (else nio sends in the clear), and what arrives was.
    assert alice.client.rooms[room_id].encrypted
    assert bob.client.rooms[room_id].encrypted
    for sender, reader in ((alice, bob), (bob, alice)):
        await sender.send(room_id, f"hello {reader.user_id}")
        received = await reader.decrypts(f"hello {reader.user_id}")
        assert (received.sender, received.decrypted) == (sender.user_id, True)


