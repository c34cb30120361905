"""What an event must pass to enter a room, checked alike for this server's own events
(`local`) and other servers' (`remote`, `outliers`): its format, the state keys its checks
read, the auth rules against a given state, and the room's member limit.

The paths differ in what they do with a failure (a local send answers the client with an
error; a remote event is rejected or soft-failed and kept), so the checks here answer with the
reason and leave the consequence to the caller, except `check_format`, whose error is the same
for both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import asyncpg

from homeserver.protocol import auth_rules, hashing
from homeserver.protocol.errors import AuthError, InvalidEventError
from homeserver.protocol.event_refs import referenced_event_ids
from homeserver.protocol.member_limit import MEMBER_LIMIT, SEATED, exceeded_limit, takes_seat
from homeserver.protocol.room_versions import RoomVersion
from homeserver.protocol.state_keys import CREATE, POWER_LEVELS, StateKey
from homeserver.services.rooms.policy import format_error
from homeserver.services.rooms.view import RoomView
from storage import events as events_store
from storage import state as state_store

# Read for every event: the auth rules' create and power levels events (push rules and
# redactions read them too) and the room's member limit.
_ALWAYS_READ = (CREATE, POWER_LEVELS, MEMBER_LIMIT)

SignedBy = Callable[[Mapping[str, Any], str], bool]


class MissingEvents(Exception):
    """The event names auth or prev events this server does not have: fetch them first."""

    def __init__(self, event_ids: Sequence[str]) -> None:
        self.event_ids = list(event_ids)
        super().__init__(f"missing events: {', '.join(self.event_ids)}")


def state_keys_for(pdu: Mapping[str, Any], room_version: RoomVersion) -> list[StateKey]:
    """The state keys the checks of `pdu` read: its auth types, the keys every event's checks
    read, and the event's own key (the state it replaces)."""
    state_key = pdu.get("state_key")
    own = state_key if isinstance(state_key, str) else None
    auth_types = auth_rules.auth_types_for_event(
        str(pdu["type"]), str(pdu["sender"]), own, pdu.get("content", {}), room_version
    )
    return keys_read([auth_types], [] if own is None else [(str(pdu["type"]), own)])


def keys_read(
    auth_types: Iterable[Sequence[StateKey]], own_keys: Iterable[StateKey]
) -> list[StateKey]:
    """The state keys the checks of several events read, once each, given their auth types
    and their own keys: what `state_keys_for` answers for one PDU, and what the local path
    loads for a batch of sends before their PDUs exist."""
    return list(dict.fromkeys([*_ALWAYS_READ, *(k for a in auth_types for k in a), *own_keys]))


def check_format(pdu: Mapping[str, Any], room_version: RoomVersion) -> None:
    """Size and format; a malformed event raises the MatrixError a client would get."""
    try:
        auth_rules.check_event_format(pdu, room_version)
    except InvalidEventError as e:
        raise format_error(e) from None


def auth_refusal(
    pdu: Mapping[str, Any], state: Mapping[StateKey, Mapping[str, Any]],
    room_version: RoomVersion, is_signed_by: SignedBy = auth_rules.signature_present,
) -> str | None:
    """Why the auth rules refuse the event against `state` (None: they allow it).
    `is_signed_by` answers the rules' signature questions: by default, whether the
    signature is present, since every event of another server that comes here had its
    required signatures (a restricted join's authorising server's among them) verified on
    receipt (federation/pdu_checks.py), or is our own join whose authoriser's signature
    federation/joins.py verified."""
    try:
        auth_rules.check_auth_rules(pdu, state, room_version, is_signed_by=is_signed_by)
    except AuthError as e:
        return str(e)
    return None


async def exceeded_member_limit(
    conn: asyncpg.Connection, room_id: str, pdu: Mapping[str, Any],
    state: Mapping[StateKey, Mapping[str, Any]], server_max: int,
) -> int | None:
    """The room's limit when `pdu` is a join or invite that would seat one user too many
    against the current memberships (None: it takes no seat, or one is free); `state` holds
    the room's limit event. Counts seats only for an event that would take a new one."""
    if not takes_seat(pdu):
        return None
    current = await state_store.get_membership(conn, room_id, pdu["state_key"])
    membership = current["membership"] if current is not None else None
    if membership in SEATED:
        return None
    seated = await state_store.count_members(conn, room_id, SEATED)
    return exceeded_limit(pdu, membership, seated, state, server_max)


async def auth_events_refusal(
    conn: asyncpg.Connection, view: RoomView, room_id: str, room_version: RoomVersion,
    pdu: Mapping[str, Any], pending: Mapping[str, Mapping[str, Any]], rejected: set[str],
) -> str | None:
    """Why a remote event fails against its own auth events (None: it passes). Auth events
    are looked up in `pending` (a batch being stored) and then in the database; a missing
    one raises MissingEvents; `rejected` are IDs known to be rejected."""
    auth_ids = referenced_event_ids(pdu.get("auth_events"))
    wanted = list(auth_ids)
    if room_version.room_id_from_create_event and pdu.get("type") != "m.room.create":
        wanted.append(hashing.create_event_id(room_id))  # v12: the create event is implied
    stored = await events_store.get_events(conn, [i for i in wanted if i not in pending])
    missing = [i for i in wanted if i not in pending and i not in stored]
    if missing:
        raise MissingEvents(missing)
    if any(i in rejected or (i in stored and stored[i].rejected) for i in auth_ids):
        return "an auth event was rejected"
    loaded = await view.get_pdus(conn, [i for i in wanted if i not in pending])
    pdus = {**loaded, **{i: dict(p) for i, p in pending.items() if i in wanted}}
    try:
        auth_rules.check_auth_events_selection(pdu, [pdus[i] for i in auth_ids], room_version)
    except AuthError as e:
        return f"auth events: {e}"
    auth_state = {
        (str(p["type"]), str(p["state_key"])): p for p in (pdus[i] for i in wanted)
        if isinstance(p.get("state_key"), str)
    }
    return not_allowed_by("its auth events", auth_refusal(pdu, auth_state, room_version))


def not_allowed_by(against: str, refusal: str | None) -> str | None:
    """The reason a remote event is kept rejected or soft-failed with."""
    return None if refusal is None else f"not allowed by {against}: {refusal}"
