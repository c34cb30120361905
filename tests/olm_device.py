"""A python-olm device and cross-signing keys for tests: real keys, real signatures.

libolm makes the identity, one-time and fallback keys and signs them exactly as a client
does (canonical JSON without `signatures` and `unsigned`), so the server is tested against
what clients really upload rather than against keys the tests made up.
"""

from __future__ import annotations

import copy
from typing import Any

import olm

from homeserver.protocol.canonical_json import encode_canonical_json
from tests.helpers import MatrixApi, User

OLM_ALGORITHM = "m.olm.v1.curve25519-aes-sha2"
MEGOLM_ALGORITHM = "m.megolm.v1.aes-sha2"
OTK_ALGORITHM = "signed_curve25519"


def signable(obj: dict[str, Any]) -> bytes:
    """What a signature covers: the canonical JSON without `signatures` and `unsigned`."""
    return encode_canonical_json(
        {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    )


def add_signature(obj: dict[str, Any], user_id: str, key_id: str, signature: str) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out.setdefault("signatures", {}).setdefault(user_id, {})[key_id] = signature
    return out


class OlmDevice:
    """One logged-in device of `user` with an olm Account."""

    def __init__(self, api: MatrixApi, user: User) -> None:
        self.api = api
        self.user = user
        self.account = olm.Account()

    @property
    def key_id(self) -> str:
        return f"ed25519:{self.user.device_id}"

    @property
    def ed25519(self) -> str:
        key: str = self.account.identity_keys["ed25519"]
        return key

    @property
    def curve25519(self) -> str:
        key: str = self.account.identity_keys["curve25519"]
        return key

    def sign(self, obj: dict[str, Any]) -> dict[str, Any]:
        return add_signature(
            obj, self.user.user_id, self.key_id, self.account.sign(signable(obj))
        )

    def device_keys(self) -> dict[str, Any]:
        return self.sign({
            "user_id": self.user.user_id,
            "device_id": self.user.device_id,
            "algorithms": [OLM_ALGORITHM, MEGOLM_ALGORITHM],
            "keys": {
                f"curve25519:{self.user.device_id}": self.curve25519,
                self.key_id: self.ed25519,
            },
        })

    def one_time_keys(self, count: int) -> dict[str, Any]:
        self.account.generate_one_time_keys(count)
        keys = {
            f"{OTK_ALGORITHM}:{key_id}": self.sign({"key": key})
            for key_id, key in self.account.one_time_keys["curve25519"].items()
        }
        self.account.mark_keys_as_published()
        return keys

    def fallback_key(self) -> dict[str, Any]:
        self.account.generate_fallback_key()
        [(key_id, key)] = self.account.fallback_key["curve25519"].items()
        self.account.mark_keys_as_published()
        return {f"{OTK_ALGORITHM}:{key_id}": self.sign({"key": key, "fallback": True})}

    def wanted(self) -> dict[str, dict[str, str]]:
        """A /keys/claim `one_time_keys` request for one key of this device."""
        return {self.user.user_id: {self.user.device_id: OTK_ALGORITHM}}

    async def upload(self, **body: Any) -> tuple[int, Any]:
        return await self.api.request("POST", "keys/upload", json=body, token=self.user.token)

    async def upload_ok(self, **body: Any) -> dict[str, Any]:
        status, response = await self.upload(**body)
        assert status == 200, (status, response)
        result: dict[str, Any] = response
        return result


class CrossSigningKey:
    """A cross-signing key pair (master, self_signing or user_signing) of a user."""

    def __init__(self, user_id: str, usage: str) -> None:
        self.user_id = user_id
        self.usage = usage
        self.signing = olm.PkSigning(olm.PkSigning.generate_seed())
        self.public: str = self.signing.public_key

    @property
    def key_id(self) -> str:
        return f"ed25519:{self.public}"

    def sign(self, obj: dict[str, Any]) -> dict[str, Any]:
        return add_signature(obj, self.user_id, self.key_id, self.signing.sign(signable(obj)))

    def key(self, signed_by: CrossSigningKey | None = None) -> dict[str, Any]:
        """The CrossSigningKey object, signed by the master key `signed_by` if given."""
        obj = {"user_id": self.user_id, "usage": [self.usage], "keys": {self.key_id: self.public}}
        return signed_by.sign(obj) if signed_by is not None else obj


def canonical(obj: Any) -> bytes:
    """Byte-level comparison of JSON objects as signatures see them."""
    return encode_canonical_json(obj)
