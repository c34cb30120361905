"""Megolm between a Moot server and a real Synapse, with unmodified matrix-nio clients on both:
an encrypted room on each side, joined from the other, a message each way decrypting. The
device lists, one-time key claims and to-device room keys cross the federation both ways."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import aiohttp
import nio
import pytest

from tests.federation_peers import Peers
from tests.interop.test_nio_encryption import ENCRYPTION, TEST_DEADLINE_S, ok, register
from tests.interop.test_nio_federation_e2e import converse, nio_device
from tests.synapse_peer import SynapsePeer

_NAMES = itertools.count()  # the module shares one Synapse: every user name is new


@pytest.mark.parametrize("host", ["moot", "synapse"])
async def test_an_encrypted_conversation_between_moot_and_synapse(
    peers: Peers, peer_http: aiohttp.ClientSession, synapse: SynapsePeer, tmp_path: Path,
    host: str,
) -> None:
    moot = await peers.new("moot")
    on_moot = nio_device(moot.client_url, "mootuser", tmp_path / "nio-moot")
    on_synapse = nio_device(synapse.client_url, f"synuser{next(_NAMES)}", tmp_path / "nio-synapse")
    try:
        async with asyncio.timeout(TEST_DEADLINE_S):
            await register(on_moot)
            await register(on_synapse)
            owner, guest = (on_moot, on_synapse) if host == "moot" else (on_synapse, on_moot)
            via = moot.name if host == "moot" else synapse.server_name
            created = ok(await owner.client.room_create(
                name="across", initial_state=[ENCRYPTION], preset=nio.RoomPreset.public_chat,
            ), "room_create")
            await converse(owner, guest, created.room_id, via)
    finally:
        await on_moot.client.close()
        await on_synapse.client.close()
