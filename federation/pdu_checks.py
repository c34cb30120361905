"""The checks on a received PDU that need other servers' keys: signatures and the content hash
(server-server-api.md "Checks performed on receipt of a PDU", steps 2 and 3).

Everything after them (auth rules against three states, soft-failing) is the room engine's
(`homeserver/services/rooms/remote.py`). The servers that must have signed an event are the
sender's server and, for a restricted join, the server of `join_authorised_via_users_server`
(rooms/v8+ "Signing"). A content hash that does not match is no reason to drop the event: its
redacted copy is what we keep and pass on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from federation.keyring import KeyLookupError, Keyring
from homeserver.protocol.errors import CanonicalJSONError, SignatureError
from homeserver.protocol.hashing import check_content_hash
from homeserver.protocol.identifiers import server_name_of
from homeserver.protocol.redaction import redact_event
from homeserver.protocol.room_versions import RoomVersion
from homeserver.protocol.signing import verify_event_signature


class PduCheckError(Exception):
    """The PDU cannot be accepted from anyone: a required signature is missing or wrong."""


def required_signers(pdu: Mapping[str, Any], room_version: RoomVersion) -> list[str]:
    """Servers whose signature the event must carry: in rooms v1-v2 also the server named in
    the event ID (server-server-api.md "Validating hashes and signatures on received
    events"), which chose that ID."""
    try:
        servers = [server_name_of(str(pdu.get("sender")))]
        if room_version.event_id_in_pdu:
            servers.append(server_name_of(str(pdu.get("event_id"))))
    except ValueError:
        raise PduCheckError("the sender or the event ID names no server") from None
    content = pdu.get("content")
    authoriser = (
        content.get("join_authorised_via_users_server") if isinstance(content, Mapping) else None
    )
    if (
        pdu.get("type") == "m.room.member" and isinstance(authoriser, str)
        and isinstance(content, Mapping) and content.get("membership") == "join"
    ):
        try:
            servers.append(server_name_of(authoriser))
        except ValueError:
            raise PduCheckError("join_authorised_via_users_server is not a user ID") from None
    return list(dict.fromkeys(servers))


class PduChecker:
    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    async def check(self, pdu: Mapping[str, Any], room_version: RoomVersion) -> dict[str, Any]:
        """The PDU as it is to be kept (redacted when its content hash is wrong); raises
        PduCheckError when a required signature does not verify."""
        if not isinstance(pdu.get("signatures"), Mapping):
            raise PduCheckError("the event has no signatures")
        for server in required_signers(pdu, room_version):
            await self.check_signed_by(pdu, server, room_version)
        try:
            if check_content_hash(pdu, room_version):
                return dict(pdu)
        except CanonicalJSONError:
            pass  # content no server could have hashed (floats, huge integers): no match
        return redact_event(pdu, room_version)

    async def check_signed_by(
        self, pdu: Mapping[str, Any], server: str, room_version: RoomVersion
    ) -> None:
        """Raise PduCheckError unless `server` signed the event with a key valid then."""
        signatures = pdu.get("signatures")
        theirs = signatures.get(server) if isinstance(signatures, Mapping) else None
        ts = pdu.get("origin_server_ts")
        valid_at = ts if isinstance(ts, int) and not isinstance(ts, bool) else None
        if not room_version.enforce_key_validity:
            # Before v5 a key signs for ever (rooms/fragments/v5-signing-requirements.md);
            # Synapse asks for a key valid at 0 there too.
            valid_at = 0
        if not isinstance(theirs, Mapping) or not theirs:
            raise PduCheckError(f"the event is not signed by {server}")
        errors = []
        for key_id in theirs:
            if not str(key_id).startswith("ed25519:"):
                continue
            try:
                key = await self.keyring.get_verify_key(server, str(key_id), valid_at_ts=valid_at)
                verify_event_signature(pdu, server, str(key_id), key, room_version)
                return
            except (KeyLookupError, SignatureError) as e:
                errors.append(str(e))
        raise PduCheckError(
            f"no valid signature of {server}: {'; '.join(errors) or 'no ed25519 key'}"
        )
