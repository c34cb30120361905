"""Megolm across servers with unmodified matrix-nio: Alice on one Moot server, Bob on another,
in an encrypted room. Device lists, one-time key claims and the room keys (to-device) all cross
the federation, or no message decrypts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import nio

from tests.federation_peers import Peers
from tests.interop.test_nio_encryption import ENCRYPTION, TEST_DEADLINE_S, Device, ok, raw, register


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


async def test_an_encrypted_conversation_between_two_servers(
    peers: Peers, peer_http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    a, b = await peers.new("a"), await peers.new("b")
    alice = nio_device(a.client_url, "alice", tmp_path / "alice")
    bob = nio_device(b.client_url, "bob", tmp_path / "bob")
    try:
        async with asyncio.timeout(TEST_DEADLINE_S):
            await register(alice)
            await register(bob)
            created = ok(await alice.client.room_create(
                name="across", initial_state=[ENCRYPTION], preset=nio.RoomPreset.public_chat,
            ), "room_create")
            await converse(alice, bob, created.room_id, a.name)
    finally:
        await alice.client.close()
        await bob.client.close()
