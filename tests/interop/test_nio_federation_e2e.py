"""Megolm across servers with unmodified matrix-nio: Alice on one Moot server, Bob on another,
in an encrypted room. Device lists, one-time key claims and the room keys (to-device) all cross
the federation, or no message decrypts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import nio

from tests.federation_peers import Peer, Peers
from tests.interop.test_nio_encryption import ENCRYPTION, TEST_DEADLINE_S, Device, ok, raw, register


def nio_device(peer: Peer, localpart: str, store: Path) -> Device:
    store.mkdir(parents=True)
    config = nio.AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True)
    return Device(nio.AsyncClient(peer.client_url, localpart, store_path=str(store), config=config))


async def test_an_encrypted_conversation_between_two_servers(
    peers: Peers, peer_http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    a, b = await peers.new("a"), await peers.new("b")
    alice = nio_device(a, "alice", tmp_path / "alice")
    bob = nio_device(b, "bob", tmp_path / "bob")
    try:
        async with asyncio.timeout(TEST_DEADLINE_S):
            await register(alice)
            await register(bob)
            created = ok(await alice.client.room_create(
                name="across", initial_state=[ENCRYPTION], preset=nio.RoomPreset.public_chat,
            ), "room_create")
            room_id = created.room_id
            await raw(bob.client, "POST", f"join/{room_id}?via={a.name}", {})
            await bob.sync_until(lambda d: room_id in d.client.rooms, "the joined room")
            await alice.sync_until(
                lambda d: room_id in d.client.rooms
                and bob.user_id in d.client.rooms[room_id].users, "Bob in the room",
            )
            assert alice.client.rooms[room_id].encrypted

            await alice.send(room_id, "hello bob, from a")
            received = await bob.decrypts("hello bob, from a")
            assert received.sender == alice.user_id
            await bob.send(room_id, "hello alice, from b")
            assert (await alice.decrypts("hello alice, from b")).sender == bob.user_id
    finally:
        await alice.client.close()
        await bob.client.close()
