"""The signature checks on received PDUs, where room versions differ: who must sign (rooms
v1-v2 add the server their event ID names) and until when a key signs (v5 on)."""

from __future__ import annotations

from typing import Any

import pytest

from federation.pdu_checks import PduChecker, PduCheckError, required_signers
from homeserver.protocol.events import build_event
from homeserver.protocol.room_versions import ROOM_V1, ROOM_V2, ROOM_V4, ROOM_V5, ROOM_V10
from homeserver.protocol.signing import (
    VerifyKeyLike,
    decode_signing_key_base64,
    verify_key_of,
)

KEY = decode_signing_key_base64("ed25519", "1", "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1")
TS = 1_700_000_000_000


class _OneKey:
    """The keyring's one call, answering with b.example's key and noting when it was asked
    to be valid."""

    def __init__(self) -> None:
        self.asked_valid_at: list[int | None] = []

    async def get_verify_key(
        self, server_name: str, key_id: str, *, valid_at_ts: int | None = None
    ) -> VerifyKeyLike:
        self.asked_valid_at.append(valid_at_ts)
        return verify_key_of(KEY)


def _event(room_version: Any, event_id: str | None) -> dict[str, Any]:
    _, pdu = build_event(
        room_version=room_version, room_id="!r:a.example", sender="@bob:b.example",
        event_type="m.room.message", content={"body": "hi"}, state_key=None,
        prev_events=[], auth_events=[], depth=2, origin_server_ts=TS,
        server_name="b.example", signing_key=KEY, event_id=event_id,
    )
    return pdu


def test_rooms_v1_v2_also_need_the_server_the_event_id_names() -> None:
    for rv in (ROOM_V1, ROOM_V2):
        assert required_signers(_event(rv, "$e:c.example"), rv) == ["b.example", "c.example"]
        assert required_signers(_event(rv, "$e:b.example"), rv) == ["b.example"]
    assert required_signers(_event(ROOM_V4, None), ROOM_V4) == ["b.example"]


async def test_a_v1_event_whose_id_names_a_server_that_did_not_sign_is_refused() -> None:
    checker = PduChecker(_OneKey())  # type: ignore[arg-type]
    await checker.check(_event(ROOM_V1, "$e:b.example"), ROOM_V1)
    with pytest.raises(PduCheckError, match=r"not signed by c\.example"):
        await checker.check(_event(ROOM_V1, "$e:c.example"), ROOM_V1)


@pytest.mark.parametrize(
    ("room_version", "valid_at"), [(ROOM_V1, 0), (ROOM_V4, 0), (ROOM_V5, TS), (ROOM_V10, TS)]
)
async def test_keys_must_be_valid_when_the_event_was_made_from_v5_only(
    room_version: Any, valid_at: int
) -> None:
    """rooms/fragments/v5-signing-requirements.md: before v5 a key's validity period is not
    enforced (Synapse asks for a key valid at 0)."""
    keys = _OneKey()
    event_id = "$e:b.example" if room_version.event_id_in_pdu else None
    await PduChecker(keys).check(_event(room_version, event_id), room_version)  # type: ignore[arg-type]
    assert keys.asked_valid_at == [valid_at]
