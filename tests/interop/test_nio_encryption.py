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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import nio
import pytest

from homeserver.protocol.canonical_json import encode_canonical_json
from tests.conftest import RunningServer
from tests.helpers import PASSWORD

TEST_DEADLINE_S = 180.0
SYNC_DEADLINE_S = 30.0
SYNC_TIMEOUT_MS = 1_000
ENCRYPTION = {
    "type": "m.room.encryption", "state_key": "",
    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
}
T = TypeVar("T")


def ok(response: T, what: str) -> T:
    """The response, after checking nio did not turn it into an error."""
    assert not isinstance(response, nio.ErrorResponse), f"{what} failed: {response}"
    return response


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


async def register(device: Device) -> Device:
    client = device.client
    ok(await client.register(client.user, PASSWORD, "nio"), "register")
    await device.sync()  # the first sync uploads the device keys and one-time keys
    return device


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


async def raw(client: nio.AsyncClient, method: str, path: str, body: Any) -> Any:
    """A plain Client-Server request with the client's token (for what nio lacks)."""
    async with client.client_session.request(
        method, f"{client.homeserver}/_matrix/client/v3/{path}", json=body,
        headers={"Authorization": f"Bearer {client.access_token}"},
    ) as resp:
        result = await resp.json()
        assert resp.status == 200, (path, resp.status, result)
        return result


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
