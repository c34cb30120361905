"""End-to-end key material for tests: cross-signing identities, device key queries and one-time
key claims, and key-backup versions, made and uploaded over the Client-Server API.
"""

from __future__ import annotations

from typing import Any

from tests.helpers import MatrixApi, User, validate_response
from tests.olm_device import CrossSigningKey


class Identity:
    """A user's three cross-signing keys."""

    def __init__(self, user: User) -> None:
        self.master = CrossSigningKey(user.user_id, "master")
        self.self_signing = CrossSigningKey(user.user_id, "self_signing")
        self.user_signing = CrossSigningKey(user.user_id, "user_signing")

    def body(self) -> dict[str, Any]:
        return {
            "master_key": self.master.key(),
            "self_signing_key": self.self_signing.key(signed_by=self.master),
            "user_signing_key": self.user_signing.key(signed_by=self.master),
        }


async def upload_signing_keys(api: MatrixApi, user: User, body: dict[str, Any]) -> tuple[int, Any]:
    return await api.request("POST", "keys/device_signing/upload", json=body, token=user.token)


async def upload_identity(api: MatrixApi, user: User) -> Identity:
    identity = Identity(user)
    status, body = await upload_signing_keys(api, user, identity.body())
    assert status == 200, body
    validate_response("cross_signing.yaml", "/keys/device_signing/upload", "post", 200, body)
    return identity


async def query(api: MatrixApi, user: User, wanted: dict[str, list[str]]) -> dict[str, Any]:
    body: dict[str, Any] = await api.ok(
        "POST", "keys/query", json={"device_keys": wanted}, token=user.token
    )
    validate_response("keys.yaml", "/keys/query", "post", 200, body)
    return body


async def claim(api: MatrixApi, user: User, wanted: dict[str, dict[str, str]]) -> dict[str, Any]:
    body: dict[str, Any] = await api.ok(
        "POST", "keys/claim", json={"one_time_keys": wanted, "timeout": 10_000}, token=user.token
    )
    validate_response("keys.yaml", "/keys/claim", "post", 200, body)
    return body


ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"


def auth_data(public_key: str = "pubkey") -> dict[str, Any]:
    return {"public_key": public_key, "signatures": {"@alice:localhost": {"ed25519:D": "sig"}}}


def key(
    first_message_index: int = 0, forwarded_count: int = 0, is_verified: bool = False,
    tag: str = "data",
) -> dict[str, Any]:
    return {
        "first_message_index": first_message_index, "forwarded_count": forwarded_count,
        "is_verified": is_verified,
        "session_data": {"ephemeral": "e", "ciphertext": tag, "mac": "m"},
    }


