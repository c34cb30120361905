"""Megolm across servers with unmodified matrix-nio: Alice on one Moot server, Bob on another,
in an encrypted room. Device lists, one-time key claims and the room keys (to-device) all cross
the federation, or no message decrypts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import nio

from tests.federation_peers import Peers
from tests.nio_devices import (
    ENCRYPTION,
    TEST_DEADLINE_S,
    converse,
    nio_device,
    ok,
    register,
)


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
