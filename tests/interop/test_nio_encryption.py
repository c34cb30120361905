"""Megolm end to end with unmodified matrix-nio (its `e2e` extra, vodozemac): the acceptance
test of group encryption.

Alice, Bob (on two devices) and Carol share an encrypted room: every message decrypts for every
member device and Bob replies from either device. Dave joins later and decrypts what follows.
Carol is kicked: Alice's next message uses a new Megolm session whose key Carol never receives.
Erin's one-time keys are all claimed away first, and she still gets the room key over an Olm
session that Alice starts with Erin's fallback key.

nio does not upload fallback keys itself, so the test makes one with Erin's own vodozemac
account and uploads it through `/keys/upload`, signed as the spec says.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import nio
import pytest

from homeserver.protocol.canonical_json import encode_canonical_json
from tests.conftest import RunningServer
from tests.helpers import PASSWORD
from tests.nio_clients import ok
from tests.nio_devices import ENCRYPTION, TEST_DEADLINE_S, Device, raw, register


@pytest.fixture
async def devices(
    homeserver: RunningServer, tmp_path: Path
) -> AsyncIterator[Callable[[str], Device]]:
    """Makes nio clients with their own crypto stores and closes them at the end."""
    made: list[Device] = []

    def make(localpart: str) -> Device:
        store = tmp_path / f"store{len(made)}"
        store.mkdir()
        config = nio.AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True)
        made.append(Device(nio.AsyncClient(
            homeserver.url, localpart, store_path=str(store), config=config
        )))
        return made[-1]

    yield make
    for device in made:
        await device.client.close()


async def login(device: Device) -> Device:
    ok(await device.client.login(PASSWORD, device_name="second"), "login")
    await device.sync()
    return device


async def upload_fallback_key(device: Device) -> str:
    """Give the device a signed fallback key from its own vodozemac account; its key ID."""
    client = device.client
    account = client.olm.account._account  # nio's OlmAccount wraps a vodozemac.Account
    account.generate_fallback_key()
    ((key_id, public_key),) = account.fallback_key.items()
    key = {"key": public_key.to_base64(), "fallback": True}
    signature = account.sign(encode_canonical_json(key)).to_base64()
    key["signatures"] = {client.user_id: {f"ed25519:{client.device_id}": signature}}
    fallback_id = f"signed_curve25519:{key_id}"
    await raw(client, "POST", "keys/upload", {"fallback_keys": {fallback_id: key}})
    account.mark_keys_as_published()
    return str(key_id)


async def claim(claimer: nio.AsyncClient, target: nio.AsyncClient) -> tuple[str, dict[str, Any]]:
    """Claim one key of the target device with a raw /keys/claim: (key ID, key)."""
    query = {"one_time_keys": {target.user_id: {target.device_id: "signed_curve25519"}}}
    result = await raw(claimer, "POST", "keys/claim", query)
    ((key_id, key),) = result["one_time_keys"][target.user_id][target.device_id].items()
    return str(key_id).split(":", 1)[1], key


async def drain_one_time_keys(claimer: nio.AsyncClient, target: nio.AsyncClient) -> str:
    """Claim the target device's keys until the server hands out its fallback key; its ID."""
    seen: set[str] = set()
    for _ in range(200):
        key_id, key = await claim(claimer, target)
        if key.get("fallback"):
            assert seen, "no one-time key was handed out before the fallback key"
            return key_id
        assert key_id not in seen, f"one-time key {key_id} handed out twice"
        seen.add(key_id)
    raise AssertionError("the fallback key never came")


async def test_megolm_group_encryption_with_nio(devices: Callable[[str], Device]) -> None:
    async with asyncio.timeout(TEST_DEADLINE_S):
        await scenario(devices)


async def scenario(devices: Callable[[str], Device]) -> None:
    alice, bob, carol = [await register(devices(n)) for n in ("alice", "bob", "carol")]
    bob2 = await login(devices("bob"))
    assert bob2.client.device_id != bob.client.device_id

    created = ok(await alice.client.room_create(
        name="secrets", invite=[bob.user_id, carol.user_id], initial_state=[ENCRYPTION]
    ), "room_create")
    room_id = created.room_id
    for member in (bob, carol):
        ok(await member.client.join(room_id), "join")
    members = (alice, bob, bob2, carol)
    for device in members:
        await device.sync_until(
            lambda d: room_id in d.client.rooms and d.client.rooms[room_id].encrypted
            and len(d.client.rooms[room_id].users) == 3,
            "the encrypted room with three members",
        )

    # Every member device decrypts; Bob replies from either of his devices.
    await alice.send(room_id, "hello from alice")
    for device in (bob, bob2, carol):
        await device.decrypts("hello from alice")
    await bob.send(room_id, "bob on his laptop")
    await bob2.send(room_id, "bob on his phone")
    for device in members:
        if device is not bob:
            await device.decrypts("bob on his laptop")
        if device is not bob2:
            await device.decrypts("bob on his phone")

    # A new member decrypts what is sent after joining.
    dave = await register(devices("dave"))
    dave.joined_ms = int(time.time() * 1000)  # the room's history before it shows too
    ok(await alice.client.room_invite(room_id, dave.user_id), "invite")
    ok(await dave.client.join(room_id), "join")
    await alice.sync_until(lambda d: dave.user_id in d.client.rooms[room_id].users, "Dave join")
    await alice.send(room_id, "welcome dave")
    before_kick = alice.session_of(room_id)
    for device in (bob, bob2, carol, dave):
        await device.decrypts("welcome dave")
    assert before_kick in carol.room_keys

    # After a kick the next message uses a new session that the kicked member never receives.
    ok(await alice.client.room_kick(room_id, carol.user_id), "kick")
    await alice.sync_until(
        lambda d: carol.user_id not in d.client.rooms[room_id].users, "Carol leave"
    )
    await alice.send(room_id, "carol is gone")
    after_kick = alice.session_of(room_id)
    assert after_kick != before_kick
    for device in (bob, bob2, dave):
        event = await device.decrypts("carol is gone")
        assert event.session_id == after_kick
    await carol.sync(timeout_ms=0)  # everything sent so far is in this response
    assert after_kick not in carol.room_keys
    assert "carol is gone" not in carol.texts

    # A device without one-time keys still gets an Olm session through its fallback key.
    erin = await register(devices("erin"))
    fallback_id = await upload_fallback_key(erin)
    assert await drain_one_time_keys(dave.client, erin.client) == fallback_id
    erin.joined_ms = int(time.time() * 1000)
    ok(await alice.client.room_invite(room_id, erin.user_id), "invite")
    ok(await erin.client.join(room_id), "join")
    await alice.sync_until(lambda d: erin.user_id in d.client.rooms[room_id].users, "Erin join")
    await alice.send(room_id, "hello erin")
    # Still no one-time key (Erin has not synced since): Alice's claim got the fallback key.
    key_id, key = await claim(dave.client, erin.client)
    assert key_id == fallback_id and key.get("fallback") is True
    await erin.decrypts("hello erin")
