"""Megolm between a Moot server and a real Synapse, with unmodified matrix-nio clients on both:
an encrypted room on each side, joined from the other, a message each way decrypting. The
device lists, one-time key claims and to-device room keys cross the federation both ways. A
direct chat started with createRoom's `invite` (Element's "start DM") reaches the invitee's
server, both ways, and is encrypted."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import aiohttp
import nio
import pytest

from tests.federation_peers import Peers
from tests.nio_clients import ok
from tests.nio_devices import ENCRYPTION, TEST_DEADLINE_S, converse, nio_device, register, talk
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


@pytest.mark.parametrize("host", ["moot", "synapse"])
async def test_a_direct_chat_between_moot_and_synapse(
    peers: Peers, peer_http: aiohttp.ClientSession, synapse: SynapsePeer, tmp_path: Path,
    host: str,
) -> None:
    """The inviter's createRoom (`trusted_private_chat`, `is_direct`, the other server's user
    in `invite`) makes the invitee's server hear of the room: the invitee's /sync shows the
    invite marked direct, the join goes through the inviter's server, and messages decrypt
    both ways. Moot encrypts the room by default (`encryption.default: private`); Synapse
    leaves rooms unencrypted unless asked, so its user asks in initial_state, as Element does."""
    moot = await peers.new("moot")
    on_moot = nio_device(moot.client_url, "mootuser", tmp_path / "nio-moot")
    on_synapse = nio_device(synapse.client_url, f"synuser{next(_NAMES)}", tmp_path / "nio-synapse")
    try:
        async with asyncio.timeout(TEST_DEADLINE_S):
            await register(on_moot)
            await register(on_synapse)
            owner, guest = (on_moot, on_synapse) if host == "moot" else (on_synapse, on_moot)
            invites: dict[str, dict[str, object]] = {}  # room ID -> the guest's invite content

            async def on_invite(room: nio.MatrixRoom, event: nio.InviteMemberEvent) -> None:
                if event.state_key == guest.user_id:
                    invites[room.room_id] = event.content

            guest.client.add_event_callback(on_invite, nio.InviteMemberEvent)
            created = ok(await owner.client.room_create(
                preset=nio.RoomPreset.trusted_private_chat, is_direct=True,
                invite=[guest.user_id], initial_state=[] if host == "moot" else [ENCRYPTION],
            ), "room_create")
            room_id = created.room_id
            await guest.sync_until(lambda d: room_id in invites, "the invite")
            assert invites[room_id].get("is_direct") is True, invites[room_id]
            ok(await guest.client.join(room_id), "join")
            await talk(owner, guest, room_id)
    finally:
        await on_moot.client.close()
        await on_synapse.client.close()
