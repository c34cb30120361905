"""The federation listener's key endpoint, and proof that every stored event is a signed,
hashed DAG node: the signature verifies with the key the server publishes over TLS."""

from __future__ import annotations

import json
import ssl
import time

import aiohttp
import signedjson.key

from homeserver.protocol.hashing import check_content_hash, compute_event_id
from homeserver.protocol.room_versions import get_room_version
from homeserver.protocol.signing import verify_event_signature, verify_json
from tests.conftest import RunningServer
from tests.helpers import MatrixApi


async def _server_keys(homeserver: RunningServer) -> dict:
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE  # the test server's certificate is self-signed
    url = f"https://127.0.0.1:{homeserver.hs.ports['federation']}/_matrix/key/v2/server"
    async with aiohttp.ClientSession() as session, session.get(url, ssl=insecure) as resp:
        assert resp.status == 200
        return await resp.json()


async def test_server_key_is_self_signed_and_valid(homeserver: RunningServer) -> None:
    keys = await _server_keys(homeserver)
    assert keys["server_name"] == homeserver.server_name
    assert keys["valid_until_ts"] > time.time() * 1000
    ((key_id, entry),) = keys["verify_keys"].items()
    assert key_id.startswith("ed25519:")
    verify_key = signedjson.key.decode_verify_key_base64("ed25519", key_id[8:], entry["key"])
    verify_json(keys, homeserver.server_name, key_id, verify_key)


async def test_federation_version(homeserver: RunningServer) -> None:
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    url = f"https://127.0.0.1:{homeserver.hs.ports['federation']}/_matrix/federation/v1/version"
    async with aiohttp.ClientSession() as session, session.get(url, ssl=insecure) as resp:
        assert resp.status == 200
        assert (await resp.json())["server"]["name"] == "Moot"


async def test_every_stored_event_is_hashed_signed_and_addressed_by_its_hash(
    homeserver: RunningServer, api: MatrixApi
) -> None:
    alice = await api.register("alice")
    room_id = await api.create_room(alice, name="signed", room_version="12")
    await api.send_message(alice, room_id, "a signed message")
    keys = await _server_keys(homeserver)
    ((key_id, entry),) = keys["verify_keys"].items()
    verify_key = signedjson.key.decode_verify_key_base64("ed25519", key_id[8:], entry["key"])

    assert homeserver.hs.db is not None
    rows = await homeserver.hs.db.run(
        lambda c: c.fetch("SELECT event_id, json FROM events WHERE room_id = $1", room_id)
    )
    version = get_room_version("12")
    assert len(rows) >= 7  # create, join, power levels, join rules, history, guest access, name
    for row in rows:
        pdu = json.loads(row["json"])
        assert check_content_hash(pdu), row["event_id"]
        verify_event_signature(pdu, homeserver.server_name, key_id, verify_key, version)
        assert compute_event_id(pdu, version) == row["event_id"]
