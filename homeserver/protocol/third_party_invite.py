"""Third-party invite signatures (auth rule 4.4.1.7).

Implements the check "If any signature in ``signed`` matches any public key in the
``m.room.third_party_invite`` event, allow" of rooms/v10-v12 "Authorisation rules". The
public keys are in the invite's ``content`` as ``public_key`` and ``public_keys[].public_key``
(unpadded base64, standard or URL-safe). This is pure ed25519 verification over the
canonical JSON of ``signed`` without ``signatures``/``unsigned``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import nacl.exceptions
import nacl.signing
from unpaddedbase64 import decode_base64

from homeserver.protocol.canonical_json import encode_canonical_json
from homeserver.protocol.errors import CanonicalJSONError


def _public_keys(invite_content: Mapping[str, Any]) -> list[bytes]:
    encoded: list[str] = []
    if isinstance(invite_content.get("public_key"), str):
        encoded.append(invite_content["public_key"])
    entries = invite_content.get("public_keys")
    if isinstance(entries, list):
        for entry in entries:
            if isinstance(entry, Mapping) and isinstance(entry.get("public_key"), str):
                encoded.append(entry["public_key"])
    keys: list[bytes] = []
    for text in encoded:
        try:
            raw = decode_base64(text)
        except Exception:  # a malformed key simply matches nothing
            continue
        if len(raw) == 32:
            keys.append(raw)
    return keys


def third_party_signature_matches(
    signed: Mapping[str, Any], invite_content: Mapping[str, Any]
) -> bool:
    """True if some ed25519 signature in ``signed`` verifies with a key of the invite."""
    signatures = signed.get("signatures")
    if not isinstance(signatures, Mapping):
        return False
    keys = _public_keys(invite_content)
    if not keys:
        return False
    try:
        message = encode_canonical_json(
            {k: v for k, v in signed.items() if k not in ("signatures", "unsigned")}
        )
    except CanonicalJSONError:
        return False
    for by_key in signatures.values():
        if not isinstance(by_key, Mapping):
            continue
        for key_id, sig_b64 in by_key.items():
            if not (isinstance(key_id, str) and key_id.startswith("ed25519:")):
                continue
            if not isinstance(sig_b64, str):
                continue
            try:
                signature = decode_base64(sig_b64)
            except Exception:
                continue
            for raw in keys:
                try:
                    nacl.signing.VerifyKey(raw).verify(message, signature)
                except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
                    continue
                return True
    return False
