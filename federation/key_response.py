"""Checking a server's key response before any of its keys is believed.

Implements server-server-api.md "Retrieving server keys" (`GET /_matrix/key/v2/server`, and
the same objects inside a notary's `POST /_matrix/key/v2/query` answer; schema
`definitions/keys.yaml`). Pure: the current time is passed in.

A response is accepted only when it names the server we asked about and carries that server's
own signature, made with one of the keys it lists in ``verify_keys``; every such signature must
verify, so a response with one good and one forged signature is refused whole. A notary's
answer is the same object with the notary's signature added, checked by
:func:`check_notary_signature` with the notary's own key.

``valid_until_ts`` is capped at seven days after the check, as keys.yaml requires ("Servers
MUST use the lesser of this field and 7 days into the future"), so a key published with a far
future validity cannot outlive a revocation for long.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from homeserver.protocol.errors import SignatureError
from homeserver.protocol.identifiers import is_valid_server_name
from homeserver.protocol.signing import VerifyKeyLike, decode_verify_key_base64, verify_json

__all__ = [
    "MAX_KEY_VALIDITY_MS",
    "CheckedKeyResponse",
    "KeyResponseError",
    "ServerVerifyKey",
    "check_key_response",
    "check_notary_signature",
    "decode_key",
]

MAX_KEY_VALIDITY_MS = 7 * 24 * 3600 * 1000
_KEY_ID_RE = re.compile(r"ed25519:[A-Za-z0-9_]+")
_MAX_INT = 2**53 - 1


class KeyResponseError(Exception):
    """The key response is malformed, names another server, or is not validly self-signed."""


@dataclass(frozen=True, slots=True)
class ServerVerifyKey:
    """One public key of a server, as far as it may be trusted."""

    key_id: str
    key_base64: str
    # Signatures made before this (ms) may be verified with the key: for a current key the
    # lesser of the response's valid_until_ts and seven days after the check; for an old key
    # its expired_ts.
    valid_until_ts: int
    # When the server stopped using it (from old_verify_keys); None for a current key. Old keys
    # verify events only, never requests.
    expired_ts: int | None


@dataclass(frozen=True, slots=True)
class CheckedKeyResponse:
    """A key response that passed :func:`check_key_response`."""

    server_name: str
    # The response's own valid_until_ts, uncapped: what a notary must hand on unchanged.
    valid_until_ts: int
    keys: tuple[ServerVerifyKey, ...]
    # The response with only the server's own signatures: what we store and serve as a notary.
    response: dict[str, Any]


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_INT:
        raise KeyResponseError(f"{what} is not a timestamp")
    return value


def decode_key(key_id: str, key_base64: str) -> VerifyKeyLike:
    """The verify key ``key_id`` (``ed25519:<version>``) from its unpadded base64."""
    algorithm, _, version = key_id.partition(":")
    try:
        return decode_verify_key_base64(algorithm, version, key_base64)
    except Exception as e:  # binascii.Error, ValueError from nacl: a malformed key
        raise KeyResponseError(f"key {key_id} is not a valid ed25519 key") from e


def _keys(section: object, what: str) -> dict[str, Mapping[str, Any]]:
    """``verify_keys``/``old_verify_keys``: ed25519 entries only (other algorithms are not
    ours to check and are left out, not refused)."""
    if not isinstance(section, Mapping):
        raise KeyResponseError(f"{what} is not an object")
    out: dict[str, Mapping[str, Any]] = {}
    for kid, entry in section.items():
        if not isinstance(kid, str) or not kid.startswith("ed25519:"):
            continue
        if not _KEY_ID_RE.fullmatch(kid):
            raise KeyResponseError(f"{what}: {kid!r} is not a key ID")
        if not isinstance(entry, Mapping) or not isinstance(entry.get("key"), str):
            raise KeyResponseError(f"{what}: {kid} has no key")
        out[kid] = entry
    return out


def check_key_response(response: object, server_name: str, now_ms: int) -> CheckedKeyResponse:
    """Check a ``/_matrix/key/v2/server`` response claimed to describe ``server_name``."""
    if not isinstance(response, Mapping):
        raise KeyResponseError("the key response is not an object")
    if response.get("server_name") != server_name:
        raise KeyResponseError(
            f"the key response is for {response.get('server_name')!r}, not {server_name!r}"
        )
    if not is_valid_server_name(server_name):
        raise KeyResponseError(f"{server_name!r} is not a server name")
    valid_until_ts = _int(response.get("valid_until_ts"), "valid_until_ts")
    current = _keys(response.get("verify_keys"), "verify_keys")
    old = _keys(response.get("old_verify_keys", {}), "old_verify_keys")

    signatures = response.get("signatures")
    own = signatures.get(server_name) if isinstance(signatures, Mapping) else None
    if not isinstance(own, Mapping):
        raise KeyResponseError(f"the key response is not signed by {server_name}")
    checked = 0
    for kid in own:
        if kid not in current:
            continue  # a signature by a key not listed proves nothing; ignore it
        try:
            verify_json(response, server_name, kid, decode_key(kid, current[kid]["key"]))
        except SignatureError as e:
            raise KeyResponseError(f"bad self-signature {kid} of {server_name}") from e
        checked += 1
    if checked == 0:
        raise KeyResponseError(
            f"the key response is not signed with any key {server_name} lists in verify_keys"
        )

    effective = min(valid_until_ts, now_ms + MAX_KEY_VALIDITY_MS)
    keys = [ServerVerifyKey(kid, e["key"], effective, None) for kid, e in current.items()]
    for kid, entry in old.items():
        if kid in current:
            continue  # listed as both: the current entry is the stronger statement
        expired = _int(entry.get("expired_ts"), f"old_verify_keys: {kid} expired_ts")
        decode_key(kid, entry["key"])
        keys.append(ServerVerifyKey(kid, entry["key"], expired, expired))
    stored = {k: v for k, v in response.items() if k != "signatures"}
    stored["signatures"] = {server_name: dict(own)}
    return CheckedKeyResponse(server_name, valid_until_ts, tuple(keys), stored)


def check_notary_signature(
    response: Mapping[str, Any], notary: str, key_id: str, verify_key: VerifyKeyLike
) -> None:
    """Check the notary's signature ``key_id`` on a key response it handed on."""
    try:
        verify_json(response, notary, key_id, verify_key)
    except SignatureError as e:
        raise KeyResponseError(f"bad notary signature {key_id} of {notary}") from e
