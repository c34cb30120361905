"""The checks every end-to-end key endpoint applies to signed key objects, and the merging of
stored third-party signatures into them.

Each turns a malformed or badly signed key into a 400 that says which key and why, so that a
client bug shows up in the client's log instead of as "unable to decrypt" on someone else's.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import asyncpg
from unpaddedbase64 import decode_base64

from homeserver.errors import MatrixError, bad_json
from homeserver.protocol.errors import SignatureError
from homeserver.protocol.signing import VerifyKeyLike, decode_verify_key_base64, verify_json

PUBLIC_KEY_BYTES = 32


def invalid_signature(error: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_SIGNATURE", error)


def check_key_b64(value: str, what: str) -> None:
    """A curve25519 or ed25519 public key: 32 bytes of unpadded base64."""
    try:
        raw = decode_base64(value)
    except (ValueError, UnicodeEncodeError):
        raise bad_json(f"{what} is not unpadded base64") from None
    if len(raw) != PUBLIC_KEY_BYTES:
        raise bad_json(f"{what} must be a {PUBLIC_KEY_BYTES}-byte public key")


def ed25519_verify_key(value: str, what: str) -> VerifyKeyLike:
    check_key_b64(value, what)
    return decode_verify_key_base64("ed25519", "key", value)


def check_signed_by(
    obj: Mapping[str, Any], user_id: str, key_id: str, verify_key: VerifyKeyLike, what: str
) -> None:
    """`obj` carries a valid signature of `user_id` with `key_id`, or 400 M_INVALID_SIGNATURE."""
    try:
        verify_json(obj, user_id, key_id, verify_key)
    except SignatureError as e:
        raise invalid_signature(f"{what}: {e}") from None


def device_identity(keys: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The (ed25519, curve25519) identity keys a DeviceKeys object publishes for its device."""
    public = keys.get("keys")
    device_id = keys.get("device_id")
    if not isinstance(public, Mapping):
        return None, None
    ed25519 = public.get(f"ed25519:{device_id}")
    curve25519 = public.get(f"curve25519:{device_id}")
    return (
        ed25519 if isinstance(ed25519, str) else None,
        curve25519 if isinstance(curve25519, str) else None,
    )


def public_key_of(key: Mapping[str, Any]) -> str:
    """The public key of a stored (validated) CrossSigningKey: its one `keys` value."""
    value: str = next(iter(key["keys"].values()))
    return value


def merge_signatures(
    obj: Mapping[str, Any], rows: Iterable[asyncpg.Record]
) -> dict[str, Any]:
    """A copy of `obj` with the stored signatures (signer_user_id, signer_key_id, signature)
    added to the ones it was uploaded with."""
    out = copy.deepcopy(dict(obj))
    for row in rows:
        by_user = out.setdefault("signatures", {}).setdefault(row["signer_user_id"], {})
        by_user[row["signer_key_id"]] = row["signature"]
    return out
