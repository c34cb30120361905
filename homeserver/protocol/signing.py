"""Signing keys, signed JSON and signed events.

Implements appendices.md "Signing JSON" ("Signing Details", "Checking for a Signature") and
server-server-api.md "Signing Events" ("Adding hashes and signatures to outgoing events",
"Validating hashes and signatures on received events"). Key handling and ed25519 come from
``signedjson``/``nacl``; this module adds the Matrix shape around them and never mutates the
caller's objects.

Key generation draws randomness inside nacl; that is the only "impure" call here and it is
what the caller asks for by name (``generate_signing_key``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import nacl.exceptions
import signedjson.key
import signedjson.sign
from signedjson.types import SigningKey
from unpaddedbase64 import decode_base64

from homeserver.protocol.canonical_json import encode_canonical_json
from homeserver.protocol.errors import CanonicalJSONError, SignatureError
from homeserver.protocol.redaction import redact_event
from homeserver.protocol.room_versions import RoomVersion

__all__ = [
    "SigningKey",
    "VerifyKeyLike",
    "decode_signing_key_base64",
    "decode_verify_key_base64",
    "encode_signing_key_base64",
    "generate_signing_key",
    "key_id",
    "read_signing_keys",
    "sign_event",
    "sign_json",
    "verify_event_signature",
    "verify_json",
    "verify_key_base64",
    "verify_key_of",
    "write_signing_keys",
]


class VerifyKeyLike(Protocol):
    """Anything with nacl's ``verify(message, signature)``: signedjson or nacl verify keys."""

    def verify(self, smessage: bytes, signature: bytes, /) -> bytes: ...


def generate_signing_key(version: str) -> SigningKey:
    """A fresh ed25519 signing key with key ID ``ed25519:<version>``."""
    return signedjson.key.generate_signing_key(version)


def encode_signing_key_base64(signing_key: SigningKey) -> str:
    """The 32-byte seed of ``signing_key`` as unpadded base64."""
    return signedjson.key.encode_signing_key_base64(signing_key)


def decode_signing_key_base64(algorithm: str, version: str, key_b64: str) -> SigningKey:
    """Rebuild a signing key from its algorithm, version and base64 seed."""
    return signedjson.key.decode_signing_key_base64(algorithm, version, key_b64)


def decode_verify_key_base64(algorithm: str, version: str, key_b64: str) -> VerifyKeyLike:
    """Rebuild a verify key, e.g. from a server's ``/_matrix/key/v2/server`` response."""
    key: VerifyKeyLike = signedjson.key.decode_verify_key_base64(algorithm, version, key_b64)
    return key


def read_signing_keys(text: str) -> list[SigningKey]:
    """Parse the signing-key file format: one ``<alg> <version> <base64 seed>`` per line."""
    return signedjson.key.read_signing_keys(line for line in text.splitlines() if line.strip())


def write_signing_keys(keys: Iterable[SigningKey]) -> str:
    """Serialise keys in the format :func:`read_signing_keys` reads."""
    return "".join(f"{k.alg} {k.version} {encode_signing_key_base64(k)}\n" for k in keys)


def key_id(signing_key: SigningKey) -> str:
    """The signing key identifier, e.g. ``ed25519:a_AbCd``."""
    return f"{signing_key.alg}:{signing_key.version}"


def verify_key_of(signing_key: SigningKey) -> VerifyKeyLike:
    """The public half of ``signing_key``."""
    key: VerifyKeyLike = signedjson.key.get_verify_key(signing_key)
    return key


def verify_key_base64(signing_key: SigningKey) -> str:
    """The public key of ``signing_key`` as unpadded base64 (as published in key responses)."""
    return signedjson.key.encode_verify_key_base64(signedjson.key.get_verify_key(signing_key))


def sign_json(
    obj: Mapping[str, Any], server_name: str, signing_key: SigningKey, *, strict: bool = True
) -> dict[str, Any]:
    """Return a signed deep copy of ``obj``; existing signatures are preserved.

    ``strict=False`` signs the lenient canonical JSON of rooms v1-v5 (floats, big integers).
    """
    signed: dict[str, Any] = copy.deepcopy(dict(obj))
    # signedjson uses canonicaljson directly, which would accept floats: validate first.
    unsigned_view = {k: v for k, v in signed.items() if k not in ("signatures", "unsigned")}
    try:
        encode_canonical_json(unsigned_view, strict=strict)
    except CanonicalJSONError as e:
        raise SignatureError(f"cannot sign non-canonical JSON: {e}") from e
    result: dict[str, Any] = signedjson.sign.sign_json(signed, server_name, signing_key)
    return result


def verify_json(
    obj: Mapping[str, Any], server_name: str, key_id: str, verify_key: VerifyKeyLike, *,
    gradual: bool = False, strict: bool = True,
) -> None:
    """Check the ``key_id`` signature of ``server_name`` on ``obj``; raise SignatureError.

    Follows appendices "Checking for a Signature": the entry must exist, decode as base64,
    and verify over the canonical JSON of the object without ``signatures`` and ``unsigned``.
    ``gradual`` is for large objects checked in a worker thread (see `encode_canonical_json`);
    ``strict=False`` checks the lenient canonical JSON of rooms v1-v5.
    """
    signatures = obj.get("signatures")
    if not isinstance(signatures, Mapping):
        raise SignatureError("object has no signatures")
    by_server = signatures.get(server_name)
    if not isinstance(by_server, Mapping):
        raise SignatureError(f"no signatures from {server_name}")
    sig_b64 = by_server.get(key_id)
    if not isinstance(sig_b64, str):
        raise SignatureError(f"no signature from {server_name} with key {key_id}")
    try:
        decode_base64(sig_b64)
    except Exception as e:  # binascii.Error, UnicodeEncodeError: a malformed signature
        raise SignatureError(f"signature {key_id} of {server_name} is not base64") from e
    stripped = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    try:
        message = encode_canonical_json(stripped, gradual=gradual, strict=strict)
    except CanonicalJSONError as e:
        raise SignatureError(f"signed object is not canonical JSON: {e}") from e
    if not signature_matches(message, sig_b64, verify_key):
        raise SignatureError(f"bad signature {key_id} from {server_name}")


def signature_matches(message: bytes, signature_b64: str, verify_key: VerifyKeyLike) -> bool:
    """Whether ``signature_b64`` (unpadded base64) is ``verify_key``'s signature of
    ``message``; a malformed signature matches nothing."""
    try:
        verify_key.verify(message, decode_base64(signature_b64))
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError, UnicodeEncodeError):
        return False  # binascii.Error is a ValueError
    return True


def sign_event(
    event: Mapping[str, Any],
    server_name: str,
    signing_key: SigningKey,
    room_version: RoomVersion,
) -> dict[str, Any]:
    """Sign the *redacted* form of ``event`` and copy the signature back onto a copy of it.

    The event should already carry its content hash (``hashing.add_content_hash``): the hash
    survives redaction, which is how the signature ends up covering the full content.
    """
    redacted_signed = sign_json(
        redact_event(event, room_version), server_name, signing_key,
        strict=room_version.strict_canonical_json,
    )
    out: dict[str, Any] = copy.deepcopy(dict(event))
    signatures: dict[str, Any] = dict(out.get("signatures") or {})
    mine = dict(signatures.get(server_name) or {})
    mine.update(redacted_signed["signatures"][server_name])
    signatures[server_name] = mine
    out["signatures"] = signatures
    return out


def verify_event_signature(
    event: Mapping[str, Any],
    server_name: str,
    key_id: str,
    verify_key: VerifyKeyLike,
    room_version: RoomVersion,
) -> None:
    """Verify ``server_name``'s signature on the redacted event; raise SignatureError.

    Works whether we were sent the full event or an already-redacted copy.
    """
    verify_json(
        redact_event(event, room_version), server_name, key_id, verify_key,
        strict=room_version.strict_canonical_json,
    )
