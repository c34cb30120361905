"""The shape checks every end-to-end key endpoint applies to key objects, and the merging of
stored third-party signatures into them.

The server stores keys as clients send them and never decodes or verifies key material: the
clients that use a key verify its signatures themselves (that is what end-to-end means), and
test suites upload placeholder keys. What the server does check is structure (JSON types,
whose key it is), so that a malformed object is a 400 naming the fault.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import asyncpg

from homeserver.errors import MatrixError


def invalid_signature(error: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_SIGNATURE", error)


def signature_by(obj: Mapping[str, Any], user_id: str, key_id: str, what: str) -> str:
    """The signature `obj` carries by `user_id`'s key `key_id` (not verified: clients do that),
    or 400 M_INVALID_SIGNATURE when it carries none."""
    signatures = obj.get("signatures")
    by_user = signatures.get(user_id) if isinstance(signatures, Mapping) else None
    signature = by_user.get(key_id) if isinstance(by_user, Mapping) else None
    if not isinstance(signature, str):
        raise invalid_signature(f"{what}: no signature by {user_id} with {key_id}")
    return signature


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
