"""Server policy on an event, beyond the auth rules: whether a redaction takes effect, the
refusal to change a room's encryption, which Matrix error a malformed event is, and when a
local state event would only repeat the current state.

Pure functions over the event and the state before it, shared by the room cluster's paths for
local and remote events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from homeserver import metrics
from homeserver.errors import MatrixError, bad_json, forbidden, too_large
from homeserver.protocol.canonical_json import encode_canonical_json
from homeserver.protocol.errors import CanonicalJSONError, EventTooLargeError, InvalidEventError
from homeserver.protocol.power_levels import required_level, user_power_level
from homeserver.protocol.room_versions import RoomVersion
from homeserver.protocol.state_keys import CREATE, ENCRYPTION, POWER_LEVELS, StateKey
from storage.events import StoredEvent


def redacts_of(pdu: Mapping[str, Any], room_version: RoomVersion) -> str | None:
    """The event a redaction names: `content.redacts` from v11, the top-level key before. The
    other key means nothing in that version, so it must not decide what is censored."""
    if pdu["type"] != "m.room.redaction" or "state_key" in pdu:
        return None
    if room_version.redacts_in_content:
        redacts = pdu["content"].get("redacts")
    else:
        redacts = pdu.get("redacts")
    return redacts if isinstance(redacts, str) else None


def may_redact(
    pdu: Mapping[str, Any], target: StoredEvent | None, room_id: str,
    states: Sequence[Mapping[StateKey, Mapping[str, Any]]], room_version: RoomVersion,
) -> bool:
    """Whether a redaction takes effect (rooms v3+ "Handling redactions"): within its own room
    only, by a user of the server whose user sent the target, or by a sender with the redact
    power level in every state of `states`. The room cluster passes the state before the
    redaction and, for another server's redaction, the current state too: that server chose
    the state before through `prev_events`, so a demoted moderator could date a redaction
    back to when they had the power. A redaction of an event not yet seen needs the power."""
    if target is not None and target.room_id != room_id:
        return False
    sender = str(pdu["sender"])
    if target is not None and sender.split(":", 1)[1] == target.sender.split(":", 1)[1]:
        return True
    return all(_has_redact_power(sender, state, room_version) for state in states)


def _has_redact_power(
    sender: str, state: Mapping[StateKey, Mapping[str, Any]], room_version: RoomVersion
) -> bool:
    power_levels = state.get(POWER_LEVELS)
    content = power_levels.get("content") if power_levels is not None else None
    create = state.get(CREATE, {})
    level = user_power_level(sender, content, create, room_version)
    return level >= required_level(content, "redact")


def format_error(e: InvalidEventError) -> MatrixError:
    """A malformed event is the client's fault: 413 when too large, else 400."""
    if isinstance(e, EventTooLargeError):
        metrics.EVENTS_REFUSED.labels("too_large").inc()
        return too_large(f"Event too large: {e}")
    metrics.EVENTS_REFUSED.labels("format").inc()
    return bad_json(f"Invalid event: {e}")


def refuse_encryption_change(
    pdu: Mapping[str, Any], state_before: Mapping[StateKey, Mapping[str, Any]]
) -> None:
    """Server policy on top of the auth rules: once a room is encrypted it stays so, with the
    same settings, since a changed m.room.encryption could downgrade every member's messages."""
    if pdu["type"] != "m.room.encryption" or pdu.get("state_key") != "":
        return
    current = state_before.get(ENCRYPTION)
    if current is not None and current["content"] != pdu["content"]:
        raise forbidden("Encryption cannot be switched off or changed once enabled")


def repeats_state(
    current: Mapping[str, Any] | None, sender: str, content: Mapping[str, Any]
) -> bool:
    """Whether a local state event would repeat the current one of its type and key: the same
    sender and the same content (compared as canonical JSON, so 1 and true differ). Such a
    send answers with the event already there and creates none, as Synapse does (its
    `deduplicate_state_event`), so a client retrying a state change or joining a room it is
    already in does not grow the room."""
    if current is None or current.get("sender") != sender:
        return False
    try:
        # Lenient: the current content may come from a room v1-v5 peer (floats, big integers).
        return encode_canonical_json(current.get("content"), strict=False) == (
            encode_canonical_json(content, strict=False)
        )
    except CanonicalJSONError:  # not canonical, so not what a client may send: not a repeat
        return False
