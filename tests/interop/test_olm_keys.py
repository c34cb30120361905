"""python-olm (libolm) against the server: keys a real Olm account makes are accepted and served
back byte for byte, and the messages built on them arrive untouched and decrypt.

Alice claims one of Bob's one-time keys (or, when they are gone, his fallback key), opens an Olm
session with it and sends Bob the Megolm room key as an `m.room.encrypted` to-device pre-key
message; Bob opens the inbound session from it, and decrypts the Megolm ciphertext Alice sent
into their room.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import olm
import pytest

from tests.helpers import MatrixApi, User
from tests.olm_device import (
    MEGOLM_ALGORITHM,
    OLM_ALGORITHM,
    OTK_ALGORITHM,
    OlmDevice,
    canonical,
    signable,
)

SYNC_DEADLINE_S = 20.0
SYNC_TIMEOUT_MS = 5_000


async def sync_until(
    api: MatrixApi, user: User, found: Callable[[dict[str, Any]], Any]
) -> Any:
    """Long-poll /sync until `found(response)` is truthy; return what it returned."""
    deadline = time.monotonic() + SYNC_DEADLINE_S
    since: str | None = None
    while time.monotonic() < deadline:
        params: dict[str, Any] = {"timeout": SYNC_TIMEOUT_MS}
        if since is not None:
            params["since"] = since
        body = await api.sync(user, **params)
        result = found(body)
        if result:
            return result
        since = body["next_batch"]
    raise AssertionError("the expected /sync content never arrived")


async def olm_device(api: MatrixApi, localpart: str, one_time_keys: int) -> OlmDevice:
    device = OlmDevice(api, await api.register(localpart))
    await device.upload_ok(
        device_keys=device.device_keys(), one_time_keys=device.one_time_keys(one_time_keys),
        fallback_keys=device.fallback_key(),
    )
    return device


async def claim_key(api: MatrixApi, claimer: User, owner: OlmDevice) -> tuple[str, dict[str, Any]]:
    body = await api.ok("POST", "keys/claim", token=claimer.token, json={
        "one_time_keys": {owner.user.user_id: {owner.user.device_id: OTK_ALGORITHM}},
    })
    [(key_id, key)] = body["one_time_keys"][owner.user.user_id][owner.user.device_id].items()
    return key_id, key


async def test_olm_keys_accepted_and_served_back_byte_identical(api: MatrixApi) -> None:
    bob = OlmDevice(api, await api.register("bob"))
    alice = await api.register("alice")
    device_keys = bob.device_keys()
    otks = bob.one_time_keys(3)
    fallback = bob.fallback_key()
    counts = await bob.upload_ok(device_keys=device_keys, one_time_keys=otks,
                                 fallback_keys=fallback)
    assert counts["one_time_key_counts"] == {OTK_ALGORITHM: 3}

    queried = await api.ok("POST", "keys/query", token=alice.token,
                           json={"device_keys": {bob.user.user_id: []}})
    served = queried["device_keys"][bob.user.user_id][bob.user.device_id]
    assert signable(served) == signable(device_keys)
    assert served["signatures"] == device_keys["signatures"]

    def encoded(keys: dict[str, Any]) -> dict[str, bytes]:
        return {key_id: canonical(key) for key_id, key in keys.items()}

    claimed = dict([await claim_key(api, alice, bob) for _ in range(3)])
    assert encoded(claimed) == encoded(otks)
    fallback_id, fallback_key = await claim_key(api, alice, bob)
    assert encoded({fallback_id: fallback_key}) == encoded(fallback)
    # Every served key still verifies with the device's ed25519 key, as a client checks it.
    for key in [*claimed.values(), fallback_key]:
        olm.ed25519_verify(bob.ed25519, signable(key),
                           key["signatures"][bob.user.user_id][bob.key_id])


async def test_bad_signature_is_served_for_the_client_to_catch(api: MatrixApi) -> None:
    """The server stores keys as sent (it never verifies key material); the client that uses
    a key verifies it, and a tampered key fails there."""
    bob = OlmDevice(api, await api.register("bob"))
    alice = await api.register("alice")
    keys = bob.device_keys()
    keys["keys"][f"curve25519:{bob.user.device_id}"] = olm.Account().identity_keys["curve25519"]
    await bob.upload_ok(device_keys=keys)
    queried = await api.ok("POST", "keys/query", token=alice.token,
                           json={"device_keys": {bob.user.user_id: []}})
    served = queried["device_keys"][bob.user.user_id][bob.user.device_id]
    with pytest.raises(olm.OlmVerifyError):
        olm.ed25519_verify(bob.ed25519, signable(served),
                           served["signatures"][bob.user.user_id][bob.key_id])


async def _room_key_via_olm_then_megolm(api: MatrixApi, bob_one_time_keys: int) -> None:
    alice = await olm_device(api, "alice", 1)
    bob = await olm_device(api, "bob", bob_one_time_keys)
    room_id = await api.create_room(alice.user, preset="private_chat", invite=[bob.user.user_id])
    await api.join(bob.user, room_id)

    # Alice: an Olm session on one of Bob's keys, carrying a Megolm room key as a pre-key message.
    _, bob_key = await claim_key(api, alice.user, bob)
    assert bob_key.get("fallback", False) == (bob_one_time_keys == 0)
    outbound = olm.OutboundSession(alice.account, bob.curve25519, bob_key["key"])
    group = olm.OutboundGroupSession()
    room_key: dict[str, Any] = {
        "type": "m.room_key", "sender": alice.user.user_id, "recipient": bob.user.user_id,
        "recipient_keys": {"ed25519": bob.ed25519}, "keys": {"ed25519": alice.ed25519},
        "content": {"algorithm": MEGOLM_ALGORITHM, "room_id": room_id,
                    "session_id": group.id, "session_key": group.session_key},
    }
    prekey = outbound.encrypt(json.dumps(room_key))
    assert isinstance(prekey, olm.OlmPreKeyMessage)
    olm_content = {
        "algorithm": OLM_ALGORITHM, "sender_key": alice.curve25519,
        "ciphertext": {bob.curve25519: {"type": 0, "body": prekey.ciphertext}},
    }
    await api.ok("PUT", "sendToDevice/m.room.encrypted/olm1", token=alice.user.token,
                 json={"messages": {bob.user.user_id: {bob.user.device_id: olm_content}}})
    plaintext = {"msgtype": "m.text", "body": "only Bob can read this"}
    megolm_content = {
        "algorithm": MEGOLM_ALGORITHM, "sender_key": alice.curve25519,
        "device_id": alice.user.device_id, "session_id": group.id,
        "ciphertext": group.encrypt(json.dumps(
            {"type": "m.room.message", "content": plaintext, "room_id": room_id})),
    }
    await api.ok("PUT", f"rooms/{room_id}/send/m.room.encrypted/megolm1",
                 token=alice.user.token, json=megolm_content)

    # Bob: the to-device message arrives untouched and opens the inbound Olm session.
    event = await sync_until(api, bob.user, lambda body: next(
        (e for e in body["to_device"]["events"] if e["type"] == "m.room.encrypted"), None))
    assert event["sender"] == alice.user.user_id
    assert event["content"] == olm_content
    received = olm.OlmPreKeyMessage(event["content"]["ciphertext"][bob.curve25519]["body"])
    inbound = olm.InboundSession(bob.account, received, alice.curve25519)
    assert json.loads(inbound.decrypt(received)) == room_key

    # ... and the Megolm ciphertext in the room decrypts with the key it carried.
    encrypted = await sync_until(api, bob.user, lambda body: next(
        (e for e in body["rooms"]["join"].get(room_id, {}).get("timeline", {}).get("events", [])
         if e["type"] == "m.room.encrypted"), None))
    assert encrypted["content"] == megolm_content
    group_in = olm.InboundGroupSession(room_key["content"]["session_key"])
    decrypted, _index = group_in.decrypt(encrypted["content"]["ciphertext"])
    assert json.loads(decrypted)["content"] == plaintext


async def test_olm_prekey_message_and_megolm_ciphertext_decrypt(api: MatrixApi) -> None:
    await _room_key_via_olm_then_megolm(api, bob_one_time_keys=2)


async def test_olm_session_through_the_fallback_key(api: MatrixApi) -> None:
    await _room_key_via_olm_then_megolm(api, bob_one_time_keys=0)
