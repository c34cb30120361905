"""Encryption by default (`encryption.default`) and encryption that cannot be switched off."""

from __future__ import annotations

import aiohttp

from tests.conftest import MakeServer
from tests.helpers import MatrixApi

MEGOLM = {"algorithm": "m.megolm.v1.aes-sha2"}


async def _encryption(api: MatrixApi, token: str, room_id: str) -> tuple[int, object]:
    return await api.request("GET", f"rooms/{room_id}/state/m.room.encryption", token=token)


async def test_private_rooms_and_direct_chats_are_encrypted_by_default(api: MatrixApi) -> None:
    alice = await api.register("alice")
    private = await api.create_room(alice, preset="private_chat")
    default_private = await api.create_room(alice)  # no preset, private visibility
    trusted = await api.create_room(alice, preset="trusted_private_chat")
    direct = await api.create_room(alice, preset="public_chat", is_direct=True)
    public = await api.create_room(alice, preset="public_chat")
    for room in (private, default_private, trusted, direct):
        assert await _encryption(api, alice.token, room) == (200, MEGOLM), room
    status, body = await _encryption(api, alice.token, public)
    assert status == 404 and body["errcode"] == "M_NOT_FOUND"


async def test_creator_settings_win_over_the_default(api: MatrixApi) -> None:
    alice = await api.register("alice")
    own = {"algorithm": "m.megolm.v1.aes-sha2", "rotation_period_msgs": 10}
    room = await api.create_room(
        alice, initial_state=[{"type": "m.room.encryption", "content": own}]
    )
    assert await _encryption(api, alice.token, room) == (200, own)


async def test_encryption_cannot_be_switched_off_or_changed(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room = await api.create_room(alice)
    for content in ({}, {"algorithm": "m.none"}, {**MEGOLM, "rotation_period_ms": 1}):
        status, body = await api.request(
            "PUT", f"rooms/{room}/state/m.room.encryption", json=content, token=alice.token
        )
        assert status == 403 and body["errcode"] == "M_FORBIDDEN", content
    assert await _encryption(api, alice.token, room) == (200, MEGOLM)
    # Enabling it in a room that had none is allowed.
    public = await api.create_room(alice, preset="public_chat")
    status, _ = await api.request(
        "PUT", f"rooms/{public}/state/m.room.encryption", json=MEGOLM, token=alice.token
    )
    assert status == 200


async def test_policy_all_and_off(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    for policy, expected in (("all", 200), ("off", 404)):
        server = await make_homeserver(overrides={"encryption.default": policy})
        api = MatrixApi(server.url, http)
        alice = await api.register(f"alice-{policy}")  # both servers share the test database
        public = await api.create_room(alice, preset="public_chat")
        private = await api.create_room(alice, preset="private_chat")
        assert (await _encryption(api, alice.token, public))[0] == expected, policy
        assert (await _encryption(api, alice.token, private))[0] == expected, policy
