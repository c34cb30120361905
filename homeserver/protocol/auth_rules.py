"""The authorisation rules of room versions 1 to 12, as pure functions.

Implements rooms/v1.md ... rooms/v12.md "Authorisation rules" (rooms fragments
v1-auth-rules for v1-v2, v3-auth-rules for v3-v5, rooms/v6.md and v7.md, v8-auth-rules for
v8-v9; the auth events selection and rule 2 live in ``auth_events`` and are re-exported here,
as is the event format check of ``event_format``, so that the room engine has one import for
"may this event be in the room").

Theory of operation
-------------------
The spec checks every event up to three times against different state (its auth events, the
state before it, the current state). All three are the same function here:
:func:`check_auth_rules` takes the event and a map ``(type, state_key) -> PDU`` holding the
state to judge it against, and either returns (allowed) or raises :class:`AuthError` naming
the rule. The caller decides which state it passes. In v12 the create event is never in
``auth_events``, yet the rules need it: the caller always puts it at
``("m.room.create", "")`` and we check that the room ID really is its hash (v12 rule 2).

Rule 2 of v1-v11 (rule 3 of v12) is about the literal ``auth_events`` list and needs the
auth events themselves, so it is a separate function, ``check_auth_events_selection``;
whether an auth event was itself rejected (rule 2.3) only the caller's storage knows.

Rule numbers in the ``AuthError`` reasons are those of rooms/v11.md; v12 inserts its new
rule 2, so v12's numbers are one higher from there on, and so are those of v1-v5, whose rule 4
is the ``m.room.aliases`` special case (reasons "v1 rule 4"). What else changed, by version:
v1-v2 have rule 11 (a redaction needs the redact level or its event ID's server to be that of
the redacted event's ID; from v3 on redactions are authorised like any event); v6 guards
``notifications`` levels; v7 adds knocking, v8 restricted joins and the signature of
``join_authorised_via_users_server`` (rule 4.2); v10 knock_restricted and integer-only power
levels (``power_levels_rules``); v11 takes the creator from the sender.

Signatures by the sender's server (and in v1-v2 by the server of the event ID, which
rooms/v3.md drops) are checked on receipt, outside these rules. The one
signature *inside* the rules, by the server of ``join_authorised_via_users_server``, needs a
key the caller holds, so every caller says how it knows: ``is_signed_by`` is required. A caller
whose events all had that signature verified on receipt (the federation path verifies the
authoriser's server among an event's required signers) passes :func:`signature_present`; a
server judging an event it built itself knows that only its own signature is on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from homeserver.protocol.auth_events import auth_types_for_event, check_auth_events_selection
from homeserver.protocol.errors import AuthError, InvalidEventError
from homeserver.protocol.event_format import check_event_format
from homeserver.protocol.event_refs import referenced_event_ids
from homeserver.protocol.hashing import compute_event_id, compute_room_id
from homeserver.protocol.identifiers import is_valid_user_id, server_name_of
from homeserver.protocol.power_levels import (
    PowerLevel,
    creators,
    event_power_level,
    required_level,
    user_power_level,
)
from homeserver.protocol.power_levels_rules import check_power_levels_change
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.protocol.state_keys import CREATE, JOIN_RULES, POWER_LEVELS, StateKey
from homeserver.protocol.third_party_invite import third_party_signature_matches

__all__ = [
    "AuthState",
    "auth_types_for_event",
    "check_auth_events_selection",
    "check_auth_rules",
    "check_event_format",
    "signature_present",
]

AuthState = Mapping[StateKey, Mapping[str, Any]]
SignatureCheck = Callable[[Mapping[str, Any], str], bool]


class _Room:
    """The state being judged against, with the accessors the rules speak in."""

    def __init__(
        self, event: Mapping[str, Any], state: AuthState, room_version: RoomVersion
    ) -> None:
        self.event = event
        self.state = state
        self.rv = room_version
        create = state.get(CREATE)
        if create is None:
            raise AuthError("no m.room.create event in the auth state")
        self.create = create
        pl = self.get(POWER_LEVELS)
        self.pl_content: Mapping[str, Any] | None = None
        if pl is not None:
            content = pl.get("content")
            self.pl_content = content if isinstance(content, Mapping) else {}

    def get(self, key: StateKey) -> Mapping[str, Any] | None:
        found = self.state.get(key)
        # Rule 2.5: an auth event from another room must never count. (A v12 create event
        # has no room_id; rule 2 of v12 ties it to the room instead.)
        if found is not None and "room_id" in found and found["room_id"] != self.event.get(
            "room_id"
        ):
            raise AuthError(f"rule 2.5: state event {key} belongs to another room")
        return found

    def membership(self, user_id: str) -> str | None:
        member = self.get(("m.room.member", user_id))
        if member is None:
            return None
        content = member.get("content")
        value = content.get("membership") if isinstance(content, Mapping) else None
        return value if isinstance(value, str) else None

    def join_rule(self) -> str | None:
        event = self.get(JOIN_RULES)
        content = event.get("content") if event is not None else None
        value = content.get("join_rule") if isinstance(content, Mapping) else None
        return value if isinstance(value, str) else None

    def power(self, user_id: str) -> PowerLevel:
        return user_power_level(user_id, self.pl_content, self.create, self.rv)

    def level(self, key: str) -> int:
        return required_level(self.pl_content, key)


def _check_create(event: Mapping[str, Any], rv: RoomVersion) -> None:
    if event.get("prev_events"):
        raise AuthError("rule 1.1: m.room.create must not have prev_events")
    content = event.get("content")
    if not isinstance(content, Mapping):
        raise AuthError("rule 1: m.room.create content must be an object")
    if rv.room_id_from_create_event:
        if "room_id" in event:
            raise AuthError("rule 1.2: m.room.create must not have a room_id in this version")
    else:
        try:
            same = server_name_of(str(event.get("room_id"))) == server_name_of(
                str(event.get("sender"))
            )
        except ValueError:
            same = False
        if not same:
            raise AuthError("rule 1.2: room_id domain does not match the sender's domain")
    # "Recognised" is every version whose rules we implement: the room engine refusing the
    # versions it does not run yet is a question of joining and creating, not of these rules.
    if "room_version" in content and content["room_version"] not in KNOWN_ROOM_VERSIONS:
        raise AuthError(f"rule 1.3: unrecognised room version {content['room_version']!r}")
    if rv.additional_creators and "additional_creators" in content:
        extra = content["additional_creators"]
        if not isinstance(extra, list) or not all(
            isinstance(u, str) and is_valid_user_id(u) for u in extra
        ):
            raise AuthError("rule 1.4: additional_creators must be a list of valid user IDs")
    if not rv.implicit_room_creator and "creator" not in content:
        raise AuthError("rule 1.4: m.room.create content has no creator")


def _check_v12_room_id(event: Mapping[str, Any], room: _Room) -> None:
    # v12 rule 2: the room ID must be the (accepted) create event's ID with sigil "!".
    if event.get("room_id") != compute_room_id(room.create, room.rv):
        raise AuthError("rule 2: room_id is not the ID of the room's m.room.create event")


def _event_id(event: Mapping[str, Any], rv: RoomVersion) -> str | None:
    # A v1/v2 event whose event_id is missing or malformed is named by nothing.
    try:
        return compute_event_id(event, rv)
    except InvalidEventError:
        return None


def signature_present(event: Mapping[str, Any], server: str) -> bool:
    """The ``is_signed_by`` of a caller that verified the event's signatures on receipt:
    a signature of ``server`` is there. Never for events whose signatures nobody verified."""
    signatures = event.get("signatures")
    by_server = signatures.get(server) if isinstance(signatures, Mapping) else None
    return isinstance(by_server, Mapping) and len(by_server) > 0


def _check_join(event: Mapping[str, Any], room: _Room, target: str) -> None:
    sender = event["sender"]
    prev_events = referenced_event_ids(event.get("prev_events"))
    # Rule 4.3.1: the creator's own first join (v1-v10: content.creator; v11+: the sender of
    # m.room.create -- in v12 *not* the additional creators).
    creator = (
        room.create.get("sender")
        if room.rv.implicit_room_creator
        else (room.create.get("content") or {}).get("creator")
    )
    if (
        len(prev_events) == 1
        and target == creator
        and prev_events[0] == _event_id(room.create, room.rv)
    ):
        return
    if sender != target:
        raise AuthError("rule 4.3.2: sender cannot join on behalf of another user")
    current = room.membership(target)
    if current == "ban":
        raise AuthError("rule 4.3.3: sender is banned")
    join_rule = room.join_rule()
    if join_rule == "invite" or (join_rule == "knock" and room.rv.knock_join_rule):
        if current in ("invite", "join"):
            return
        raise AuthError(f"rule 4.3.4: join_rule is {join_rule} and sender is not invited")
    if (join_rule == "restricted" and room.rv.restricted_join_rule) or (
        join_rule == "knock_restricted" and room.rv.knock_restricted_join_rule
    ):
        if current in ("invite", "join"):
            return
        via = event["content"].get("join_authorised_via_users_server")
        if not isinstance(via, str) or room.membership(via) != "join":
            raise AuthError("rule 4.3.5.2: join not authorised by a joined member")
        if room.power(via) < room.level("invite"):
            raise AuthError("rule 4.3.5.2: authorising user may not invite")
        return
    if join_rule == "public":
        return
    raise AuthError(f"rule 4.3.7: join_rule {join_rule!r} does not allow joining")


def _check_invite(event: Mapping[str, Any], room: _Room, target: str) -> None:
    sender = event["sender"]
    content = event["content"]
    if "third_party_invite" in content:
        if room.membership(target) == "ban":
            raise AuthError("rule 4.4.1.1: target user is banned")
        tpi = content["third_party_invite"]
        signed = tpi.get("signed") if isinstance(tpi, Mapping) else None
        if not isinstance(signed, Mapping):
            raise AuthError("rule 4.4.1.2: third_party_invite has no signed property")
        if "mxid" not in signed or "token" not in signed:
            raise AuthError("rule 4.4.1.3: signed lacks mxid or token")
        if signed["mxid"] != target:
            raise AuthError("rule 4.4.1.4: signed mxid does not match state_key")
        token = signed["token"]
        invite = room.get(("m.room.third_party_invite", token)) if isinstance(token, str) else None
        if invite is None:
            raise AuthError("rule 4.4.1.5: no m.room.third_party_invite for this token")
        if invite.get("sender") != sender:
            raise AuthError("rule 4.4.1.6: sender did not send the m.room.third_party_invite")
        if third_party_signature_matches(signed, invite.get("content") or {}):
            return
        raise AuthError("rule 4.4.1.8: no signature in signed matches the invite's keys")
    if room.membership(sender) != "join":
        raise AuthError("rule 4.4.2: inviter is not joined")
    if room.membership(target) in ("join", "ban"):
        raise AuthError("rule 4.4.3: target is already joined or banned")
    if room.power(sender) >= room.level("invite"):
        return
    raise AuthError("rule 4.4.5: sender's power level is below the invite level")


def _check_leave(event: Mapping[str, Any], room: _Room, target: str) -> None:
    sender = event["sender"]
    if sender == target:
        # v7 lets a knock be rescinded; before, knock was no membership at all.
        leavable = ("invite", "join", "knock") if room.rv.knock_join_rule else ("invite", "join")
        if room.membership(target) in leavable:
            return
        raise AuthError("rule 4.5.1: cannot leave without being invited, joined or knocking")
    if room.membership(sender) != "join":
        raise AuthError("rule 4.5.2: sender is not joined")
    sender_level = room.power(sender)
    if room.membership(target) == "ban" and sender_level < room.level("ban"):
        raise AuthError("rule 4.5.3: sender may not unban")
    if sender_level >= room.level("kick") and room.power(target) < sender_level:
        return
    raise AuthError("rule 4.5.5: sender may not kick this user")


def _check_ban(event: Mapping[str, Any], room: _Room, target: str) -> None:
    sender = event["sender"]
    if room.membership(sender) != "join":
        raise AuthError("rule 4.6.1: sender is not joined")
    sender_level = room.power(sender)
    if sender_level >= room.level("ban") and room.power(target) < sender_level:
        return
    raise AuthError("rule 4.6.3: sender may not ban this user")


def _check_knock(event: Mapping[str, Any], room: _Room, target: str) -> None:
    join_rule = room.join_rule()
    allowed = (join_rule == "knock" and room.rv.knock_join_rule) or (
        join_rule == "knock_restricted" and room.rv.knock_restricted_join_rule
    )
    if not allowed:
        raise AuthError(f"rule 4.7.1: join_rule {join_rule!r} does not allow knocking")
    if event["sender"] != target:
        raise AuthError("rule 4.7.2: cannot knock on behalf of another user")
    if room.membership(target) not in ("ban", "invite", "join"):
        return
    raise AuthError("rule 4.7.4: banned, invited or joined users cannot knock")


_MEMBERSHIP_RULES = {
    "join": _check_join,
    "invite": _check_invite,
    "leave": _check_leave,
    "ban": _check_ban,
    "knock": _check_knock,
}


def _check_member(
    event: Mapping[str, Any], room: _Room, is_signed_by: SignatureCheck
) -> None:
    content = event.get("content")
    target = event.get("state_key")
    if not isinstance(content, Mapping):
        raise AuthError("rule 4.1: m.room.member content must be an object")
    membership = content.get("membership")
    if not isinstance(target, str) or membership is None:
        raise AuthError("rule 4.1: m.room.member needs a state_key and content.membership")
    if "join_authorised_via_users_server" in content and room.rv.restricted_join_rule:
        via = content["join_authorised_via_users_server"]
        try:
            server = server_name_of(via) if isinstance(via, str) else None
        except ValueError:
            server = None
        if server is None or not is_signed_by(event, server):
            raise AuthError("rule 4.2.1: not signed by the authorising user's server")
    rule = _MEMBERSHIP_RULES.get(membership) if isinstance(membership, str) else None
    if rule is None or (membership == "knock" and not room.rv.knock_join_rule):
        raise AuthError(f"rule 4.8: unknown membership {membership!r}")
    rule(event, room, target)


def check_auth_rules(
    event: Mapping[str, Any],
    auth_state: AuthState,
    room_version: RoomVersion,
    *,
    is_signed_by: SignatureCheck,
) -> None:
    """Raise :class:`AuthError` unless ``event`` is allowed given ``auth_state``;
    ``is_signed_by(event, server)`` says whether ``server`` validly signed the event."""
    event_type = event.get("type")
    if event_type == "m.room.create":
        _check_create(event, room_version)
        return
    room = _Room(event, auth_state, room_version)
    if room_version.room_id_from_create_event:
        _check_v12_room_id(event, room)
    sender = event.get("sender")
    if not isinstance(sender, str):
        raise AuthError("event has no sender")

    create_content = room.create.get("content") or {}
    if create_content.get("m.federate") is False:
        try:
            same = server_name_of(sender) == server_name_of(str(room.create.get("sender")))
        except ValueError:
            same = False
        if not same:
            raise AuthError("rule 3: room is not federated and sender is on another server")

    if event_type == "m.room.aliases" and room_version.special_case_aliases_auth:
        _check_aliases(event, sender)
        return

    if event_type == "m.room.member":
        _check_member(event, room, is_signed_by)
        return

    if room.membership(sender) != "join":
        raise AuthError("rule 5: sender is not joined to the room")
    sender_level = room.power(sender)
    if event_type == "m.room.third_party_invite":
        if sender_level >= room.level("invite"):
            return
        raise AuthError("rule 6.1: sender's power level is below the invite level")
    state_key = event.get("state_key")
    if event_power_level(str(event_type), state_key, room.pl_content) > sender_level:
        raise AuthError(f"rule 7: sender's power level is too low to send {event_type}")
    if isinstance(state_key, str) and state_key.startswith("@") and state_key != sender:
        raise AuthError("rule 8: state_key starting with '@' must be the sender")
    if event_type == "m.room.power_levels":
        check_power_levels_change(
            event, room.pl_content, sender_level, creators(room.create, room_version),
            room_version,
        )
    if event_type == "m.room.redaction" and room_version.redaction_auth_rule:
        _check_v1_redaction(event, room, sender_level)


def _check_aliases(event: Mapping[str, Any], sender: str) -> None:
    # v1-v5 rule 4: a server's aliases live under its name, and nobody else may set them;
    # membership and power do not matter.
    state_key = event.get("state_key")
    if not isinstance(state_key, str) or not state_key:
        raise AuthError("v1 rule 4.1: m.room.aliases needs a state_key")
    try:
        same = state_key == server_name_of(sender)
    except ValueError:
        same = False
    if not same:
        raise AuthError("v1 rule 4.2: m.room.aliases state_key is not the sender's server")


def _check_v1_redaction(event: Mapping[str, Any], room: _Room, sender_level: PowerLevel) -> None:
    # v1-v2 rule 11: the redact level, or a redaction from the server that made the event
    # (both IDs are $opaque:server in these versions).
    if sender_level >= room.level("redact"):
        return
    redacts = event.get("redacts")
    try:
        same = server_name_of(str(event.get("event_id"))) == server_name_of(str(redacts))
    except ValueError:
        same = False
    if not same:
        raise AuthError("v1 rule 11: sender may not redact events of another server")
