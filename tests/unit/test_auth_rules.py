"""Authorisation rules of rooms v1-v12, one test per rule family, via RoomBuilder.

Every rule family runs against every version; where versions differ (knock from v7,
restricted joins from v8, knock_restricted from v10, the m.room.aliases rule of v1-v5, the
redaction rule of v1-v2) the versions are listed from the spec text, not read off the records.
"""

from __future__ import annotations

from typing import Any

import pytest
from nacl.signing import SigningKey as NaclSigningKey
from unpaddedbase64 import encode_base64

from homeserver.protocol.auth_rules import (
    auth_types_for_event,
    check_auth_events_selection,
    check_auth_rules,
    signature_present,
)
from homeserver.protocol.canonical_json import encode_canonical_json
from homeserver.protocol.errors import AuthError
from homeserver.protocol.event_refs import referenced_event_ids
from homeserver.protocol.room_versions import ROOM_V11, ROOM_V12, get_room_version
from homeserver.protocol.signing import sign_event

from .room_builder import RoomBuilder, server_key

ALICE = "@alice:a.example"
BOB = "@bob:b.example"
CAROL = "@carol:c.example"
EVE = "@eve:e.example"
VERSIONS = [str(v) for v in range(1, 13)]
KNOCK_VERSIONS = [str(v) for v in range(7, 13)]
RESTRICTED_JOINS = [(str(v), "restricted") for v in range(8, 13)] + [
    (str(v), "knock_restricted") for v in range(10, 13)]
NOT_RESTRICTED_JOINS = [(str(v), "restricted") for v in range(1, 8)] + [
    (str(v), "knock_restricted") for v in range(1, 10)]


def rejected(b: RoomBuilder, sender: str, event_type: str, content: dict[str, Any],
             state_key: str | None = None) -> str:
    _, pdu = b.make(sender, event_type, content, state_key)
    with pytest.raises(AuthError) as info:
        b.check(pdu)
    return info.value.reason


# -- m.room.create ------------------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_create_is_allowed_and_creator_joins(version: str) -> None:
    b = RoomBuilder.standard(version)
    assert b.state[("m.room.member", ALICE)]["content"]["membership"] == "join"


def test_create_with_prev_events_is_rejected() -> None:
    b = RoomBuilder("11")
    _, pdu = b.make(ALICE, "m.room.create", {}, "", prev_events=[b.create_id])
    with pytest.raises(AuthError, match=r"1\.1"):
        check_auth_rules(pdu, {}, b.rv, is_signed_by=b.is_signed_by)


def test_create_room_id_domain_must_match_sender() -> None:
    with pytest.raises(AuthError, match=r"1\.2"):
        RoomBuilder("11", creator="@alice:other.example", room_id="!room:a.example")


def test_v12_create_must_not_have_room_id() -> None:
    b = RoomBuilder("12")
    create = {**b.events[b.create_id], "room_id": "!x:a.example"}
    with pytest.raises(AuthError, match=r"1\.2"):
        check_auth_rules(create, {}, ROOM_V12, is_signed_by=b.is_signed_by)


def test_create_unknown_room_version_is_rejected() -> None:
    with pytest.raises(AuthError, match=r"1\.3"):
        RoomBuilder("11", create_content={"room_version": "999"})


@pytest.mark.parametrize("version", VERSIONS[:10])
def test_v1_to_v10_create_needs_creator(version: str) -> None:
    b = RoomBuilder(version)
    create = dict(b.events[b.create_id])
    create["content"] = {"room_version": version}
    with pytest.raises(AuthError, match="creator"):
        check_auth_rules(create, {}, b.rv, is_signed_by=b.is_signed_by)
    create["content"] = {}
    # v11 dropped the creator property
    check_auth_rules(create, {}, ROOM_V11, is_signed_by=b.is_signed_by)


def test_v12_additional_creators_must_be_user_ids() -> None:
    RoomBuilder("12", create_content={"additional_creators": [BOB]})
    for bad in ["@bob:b.example", ["not-a-user"], [5]]:
        with pytest.raises(AuthError, match="additional_creators"):
            RoomBuilder("12", create_content={"additional_creators": bad})


def test_v12_room_id_must_be_the_create_events_hash() -> None:
    b = RoomBuilder.standard("12")
    other = RoomBuilder.standard("12", creator=BOB)
    _, pdu = b.make(ALICE, "m.room.message", {"body": "x"})
    state = b.auth_state()
    state[("m.room.create", "")] = other.state[("m.room.create", "")]
    with pytest.raises(AuthError, match="rule 2"):
        check_auth_rules(pdu, state, ROOM_V12, is_signed_by=b.is_signed_by)


def test_missing_create_event_is_rejected() -> None:
    b = RoomBuilder.standard("11")
    _, pdu = b.make(ALICE, "m.room.message", {"body": "x"})
    state = b.auth_state()
    del state[("m.room.create", "")]
    with pytest.raises(AuthError, match="create"):
        check_auth_rules(pdu, state, ROOM_V11, is_signed_by=b.is_signed_by)


# -- auth events selection ----------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_auth_types_for_member_events(version: str) -> None:
    b = RoomBuilder(version)
    keys = auth_types_for_event(
        "m.room.member", BOB, BOB,
        {"membership": "join", "join_authorised_via_users_server": ALICE}, b.rv)
    expected = [("m.room.power_levels", ""), ("m.room.member", BOB), ("m.room.join_rules", "")]
    if int(version) >= 8:  # the authoriser's membership is selected from v8 (restricted joins)
        expected.append(("m.room.member", ALICE))
    if b.rv.create_event_in_auth_events:
        expected.insert(0, ("m.room.create", ""))
    assert keys == expected
    invite = auth_types_for_event(
        "m.room.member", ALICE, BOB,
        {"membership": "invite", "third_party_invite": {"signed": {"token": "tok"}}}, b.rv)
    assert ("m.room.third_party_invite", "tok") in invite
    assert auth_types_for_event("m.room.create", ALICE, "", {}, b.rv) == []
    leave = auth_types_for_event("m.room.member", ALICE, BOB, {"membership": "leave"}, b.rv)
    assert ("m.room.join_rules", "") not in leave


@pytest.mark.parametrize("version", VERSIONS)
def test_auth_events_selection_checks(version: str) -> None:
    b = RoomBuilder.standard(version)
    _, pdu = b.make(ALICE, "m.room.message", {"body": "x"})
    auth = [b.events[i] for i in referenced_event_ids(pdu["auth_events"])]
    check_auth_events_selection(pdu, auth, b.rv)
    with pytest.raises(AuthError, match=r"2\.1"):
        check_auth_events_selection(pdu, auth + auth[:1], b.rv)
    join_rules = b.state[("m.room.join_rules", "")]
    with pytest.raises(AuthError, match=r"2\.2"):
        check_auth_events_selection(pdu, [*auth, join_rules], b.rv)
    create = b.events[b.create_id]
    if b.rv.create_event_in_auth_events:
        with pytest.raises(AuthError, match=r"2\.4"):
            check_auth_events_selection(pdu, [e for e in auth if e is not create
                                              and e["type"] != "m.room.create"], b.rv)
        foreign = {**auth[0], "room_id": "!elsewhere:a.example"}
        with pytest.raises(AuthError, match=r"2\.5"):
            check_auth_events_selection(pdu, [foreign, *auth[1:]], b.rv)
    else:
        with pytest.raises(AuthError):
            check_auth_events_selection(pdu, [*auth, create], b.rv)


# -- m.federate -----------------------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_unfederated_room_refuses_other_servers(version: str) -> None:
    b = RoomBuilder.standard(version, create_content={"m.federate": False})
    b.join("@ally:a.example")
    with pytest.raises(AuthError, match="rule 3"):
        b.join(BOB)


# -- joins ------------------------------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_join_public_room(version: str) -> None:
    b = RoomBuilder.standard(version, join_rule="public")
    b.join(BOB)
    b.message(BOB)


@pytest.mark.parametrize("version", VERSIONS)
def test_cannot_join_for_someone_else(version: str) -> None:
    b = RoomBuilder.standard(version)
    assert "4.3.2" in rejected(b, ALICE, "m.room.member", {"membership": "join"}, BOB)


@pytest.mark.parametrize("version", VERSIONS)
def test_only_creator_gets_first_join_shortcut(version: str) -> None:
    b = RoomBuilder(version)
    with pytest.raises(AuthError):
        b.join(BOB)  # no join rules yet: nothing allows it
    b.join(ALICE)


@pytest.mark.parametrize("version", VERSIONS)
def test_join_invite_only_room(version: str) -> None:
    b = RoomBuilder.standard(version, join_rule="invite")
    with pytest.raises(AuthError, match=r"4\.3\.4"):
        b.join(BOB)
    b.invite(ALICE, BOB)
    b.join(BOB)
    b.join(BOB)  # re-joining (e.g. a profile change) is allowed


@pytest.mark.parametrize("version", KNOCK_VERSIONS)
def test_join_knock_room_needs_invite(version: str) -> None:
    b = RoomBuilder.standard(version, join_rule="knock")
    with pytest.raises(AuthError):
        b.join(BOB)
    b.knock(BOB)
    with pytest.raises(AuthError):
        b.join(BOB)  # a knock is not an invite
    b.invite(ALICE, BOB)
    b.join(BOB)


@pytest.mark.parametrize("version", VERSIONS)
def test_banned_user_cannot_join(version: str) -> None:
    b = RoomBuilder.standard(version)
    b.join(BOB)
    b.ban(ALICE, BOB)
    with pytest.raises(AuthError, match=r"4\.3\.3"):
        b.join(BOB)


@pytest.mark.parametrize("version", VERSIONS[:6])
def test_before_v7_knock_is_neither_membership_nor_join_rule(version: str) -> None:
    b = RoomBuilder.standard(version, join_rule="knock")
    assert "4.8" in rejected(b, BOB, "m.room.member", {"membership": "knock"}, BOB)
    b.invite(ALICE, BOB)
    with pytest.raises(AuthError, match=r"4\.3\.7"):
        b.join(BOB)  # only "invite" rooms honour invites before v7
    b.set_join_rule(ALICE, "invite")
    b.join(BOB)


@pytest.mark.parametrize(("version", "rule"), RESTRICTED_JOINS)
def test_restricted_join(version: str, rule: str) -> None:
    b = RoomBuilder.standard(version, join_rule=rule)
    with pytest.raises(AuthError, match=r"4\.3\.5"):
        b.join(BOB)
    b.join(BOB, join_authorised_via_users_server=ALICE)
    # The authoriser must be joined...
    with pytest.raises(AuthError, match=r"4\.3\.5"):
        b.join(CAROL, join_authorised_via_users_server="@ghost:a.example")
    # ...and able to invite (Bob has level 0 < invite level 50).
    pl = b.power_levels()
    b.set_power_levels(ALICE, {**pl, "invite": 50})
    with pytest.raises(AuthError, match=r"4\.3\.5"):
        b.join(CAROL, join_authorised_via_users_server=BOB)
    # ...and its server must have signed the join.
    with pytest.raises(AuthError, match=r"4\.2\.1"):
        b.join(CAROL, join_authorised_via_users_server=ALICE, cosign=False)
    b.join(CAROL, join_authorised_via_users_server=ALICE)
    if rule == "knock_restricted":
        b.knock(EVE)


def test_join_authorised_signature_callback() -> None:
    b = RoomBuilder.standard("12", join_rule="restricted")
    _, pdu = b.make(CAROL, "m.room.member",
                    {"membership": "join", "join_authorised_via_users_server": ALICE}, CAROL)
    seen: list[str] = []

    def signed_by(event: Any, server: str) -> bool:
        seen.append(server)
        return True

    check_auth_rules(pdu, b.auth_state(), b.rv, is_signed_by=signed_by)
    assert seen == ["a.example"]


@pytest.mark.parametrize(("version", "rule"), NOT_RESTRICTED_JOINS)
def test_restricted_join_rules_before_their_version(version: str, rule: str) -> None:
    b = RoomBuilder.standard(version, join_rule=rule)
    with pytest.raises(AuthError, match=r"4\.3\.7"):
        b.join(BOB, join_authorised_via_users_server=ALICE)
    # Nor does knocking help: no such membership before v7, only for "knock" rooms after.
    reason = rejected(b, BOB, "m.room.member", {"membership": "knock"}, BOB)
    assert ("4.8" if int(version) < 7 else "4.7.1") in reason


@pytest.mark.parametrize("version", VERSIONS)
def test_authoriser_signature_is_required_from_v8_only(version: str) -> None:
    """Rule 4.2 (v8+): a join naming an authoriser needs that server's signature; before v8
    the key means nothing and a public room takes the join unsigned."""
    b = RoomBuilder.standard(version, join_rule="public")
    if int(version) >= 8:
        with pytest.raises(AuthError, match=r"4\.2\.1"):
            b.join(CAROL, join_authorised_via_users_server=ALICE, cosign=False)
    else:
        b.join(CAROL, join_authorised_via_users_server=ALICE, cosign=False)


@pytest.mark.parametrize(("version", "rule"), RESTRICTED_JOINS)
def test_a_forged_authoriser_signature_is_refused(version: str, rule: str) -> None:
    """A signature entry of the authoriser's server that does not verify: present, but not
    valid. The check that verifies refuses it; mere presence is only ever for events whose
    signatures were verified on receipt."""
    b = RoomBuilder.standard(version, join_rule=rule)
    _, pdu = b.make(CAROL, "m.room.member",
                    {"membership": "join", "join_authorised_via_users_server": ALICE}, CAROL)
    carols = pdu["signatures"]["c.example"]
    forged = {**pdu, "signatures": {**pdu["signatures"], "a.example": dict(carols)}}
    with pytest.raises(AuthError, match=r"4\.2\.1"):
        check_auth_rules(forged, b.auth_state(), b.rv, is_signed_by=b.is_signed_by)
    check_auth_rules(forged, b.auth_state(), b.rv, is_signed_by=signature_present)
    cosigned = sign_event(pdu, "a.example", server_key("a.example"), b.rv)
    check_auth_rules(cosigned, b.auth_state(), b.rv, is_signed_by=b.is_signed_by)


# -- invites --------------------------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_invite_by_low_power_user(version: str) -> None:
    b = RoomBuilder.standard(version)
    b.join(BOB)
    b.set_power_levels(ALICE, {**b.power_levels(), "invite": 50})
    with pytest.raises(AuthError, match=r"4\.4\.5"):
        b.invite(BOB, CAROL)
    b.invite(ALICE, CAROL)


@pytest.mark.parametrize("version", VERSIONS)
def test_invite_requires_joined_sender_and_free_target(version: str) -> None:
    b = RoomBuilder.standard(version)
    assert "4.4.2" in rejected(b, BOB, "m.room.member", {"membership": "invite"}, CAROL)
    b.join(BOB)
    with pytest.raises(AuthError, match=r"4\.4\.3"):
        b.invite(ALICE, BOB)  # already joined
    b.ban(ALICE, CAROL)
    with pytest.raises(AuthError, match=r"4\.4\.3"):
        b.invite(ALICE, CAROL)  # banned


def _third_party_room(version: str) -> tuple[RoomBuilder, NaclSigningKey]:
    b = RoomBuilder.standard(version)
    idk = NaclSigningKey(b"\x01" * 32)
    b.send(ALICE, "m.room.third_party_invite",
           {"display_name": "b...", "key_validity_url": "https://id.example/v",
            "public_key": encode_base64(bytes(idk.verify_key)),
            "public_keys": [{"public_key": encode_base64(b"\x02" * 32)}]}, "tok")
    return b, idk


def _signed(idk: NaclSigningKey, mxid: str, token: str = "tok") -> dict[str, Any]:
    body = {"mxid": mxid, "sender": ALICE, "token": token}
    sig = idk.sign(encode_canonical_json(body)).signature
    return {**body, "signatures": {"id.example": {"ed25519:0": encode_base64(sig)}}}


@pytest.mark.parametrize("version", VERSIONS)
def test_third_party_invite(version: str) -> None:
    b, idk = _third_party_room(version)
    b.invite(ALICE, BOB, third_party_invite={"display_name": "b", "signed": _signed(idk, BOB)})
    b.join(BOB)


@pytest.mark.parametrize("version", VERSIONS)
def test_third_party_invite_failures(version: str) -> None:
    b, idk = _third_party_room(version)
    other = NaclSigningKey(b"\x03" * 32)
    cases = {
        "4.4.1.2": {"display_name": "b"},
        "4.4.1.3": {"signed": {"mxid": BOB}},
        "4.4.1.4": {"signed": _signed(idk, CAROL)},
        "4.4.1.5": {"signed": _signed(idk, BOB, token="nope")},
        "4.4.1.8": {"signed": _signed(other, BOB)},
    }
    for rule, tpi in cases.items():
        reason = rejected(b, ALICE, "m.room.member",
                          {"membership": "invite", "third_party_invite": tpi}, BOB)
        assert rule in reason
    b.join(CAROL)
    reason = rejected(b, CAROL, "m.room.member",
                      {"membership": "invite", "third_party_invite": {"signed": _signed(idk, BOB)}},
                      BOB)
    assert "4.4.1.6" in reason
    b.ban(ALICE, BOB)
    reason = rejected(b, ALICE, "m.room.member",
                      {"membership": "invite", "third_party_invite": {"signed": _signed(idk, BOB)}},
                      BOB)
    assert "4.4.1.1" in reason


@pytest.mark.parametrize("version", VERSIONS)
def test_sending_third_party_invite_needs_invite_level(version: str) -> None:
    b = RoomBuilder.standard(version)
    b.join(BOB)
    b.set_power_levels(ALICE, {**b.power_levels(), "invite": 50})
    assert "6.1" in rejected(b, BOB, "m.room.third_party_invite", {"public_key": "x"}, "t")


# -- leave, kick, ban -------------------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_leave(version: str) -> None:
    b = RoomBuilder.standard(version, join_rule="invite")
    with pytest.raises(AuthError, match=r"4\.5\.1"):
        b.leave(BOB)  # never was in the room
    b.invite(ALICE, BOB)
    b.leave(BOB)  # rejecting an invite
    b.invite(ALICE, BOB)
    b.join(BOB)
    b.leave(BOB)
    with pytest.raises(AuthError, match=r"4\.5\.1"):
        b.leave(BOB)


@pytest.mark.parametrize("version", KNOCK_VERSIONS)
def test_knocker_can_rescind(version: str) -> None:
    b = RoomBuilder.standard(version, join_rule="knock")
    b.knock(BOB)
    b.leave(BOB)


@pytest.mark.parametrize("version", VERSIONS)
def test_kick_permissions(version: str) -> None:
    b = RoomBuilder.standard(version)
    b.join(BOB)
    b.join(CAROL)
    with pytest.raises(AuthError, match=r"4\.5\.5"):
        b.kick(BOB, CAROL)  # level 0 < kick 50
    b.kick(ALICE, CAROL)
    assert "4.5.2" in rejected(b, CAROL, "m.room.member", {"membership": "leave"}, BOB)


@pytest.mark.parametrize("version", VERSIONS)
def test_kick_needs_higher_level_than_target(version: str) -> None:
    b = RoomBuilder.standard(version)
    b.join(BOB)
    b.join(CAROL)
    users = dict(b.power_levels()["users"])
    users.update({BOB: 50, CAROL: 50})
    b.set_power_levels(ALICE, {**b.power_levels(), "users": users})
    with pytest.raises(AuthError, match=r"4\.5\.5"):
        b.kick(BOB, CAROL)  # equal levels
    with pytest.raises(AuthError, match=r"4\.6"):
        b.ban(BOB, CAROL)


@pytest.mark.parametrize("version", VERSIONS)
def test_ban_and_unban(version: str) -> None:
    b = RoomBuilder.standard(version)
    b.join(BOB)
    b.join(CAROL)
    with pytest.raises(AuthError, match=r"4\.6"):
        b.ban(BOB, CAROL)
    b.ban(ALICE, CAROL)
    users = {**b.power_levels()["users"], BOB: 49}
    b.set_power_levels(ALICE, {**b.power_levels(), "users": users, "kick": 40})
    with pytest.raises(AuthError, match=r"4\.5\.3"):
        b.kick(BOB, CAROL)  # unbanning needs the ban level too
    b.kick(ALICE, CAROL)  # unban
    assert "4.6.1" in rejected(b, EVE, "m.room.member", {"membership": "ban"}, BOB)


@pytest.mark.parametrize("version", VERSIONS[:11])
def test_cannot_ban_higher_power_user(version: str) -> None:
    b = RoomBuilder.standard(version)
    b.join(BOB)
    users = {**b.power_levels()["users"], BOB: 60}
    b.set_power_levels(ALICE, {**b.power_levels(), "users": users})
    with pytest.raises(AuthError, match=r"4\.6"):
        b.ban(BOB, ALICE)
    b.ban(ALICE, BOB)


# -- knock --------------------------------------------------------------------------------------

@pytest.mark.parametrize("version", KNOCK_VERSIONS)
def test_knock_rules(version: str) -> None:
    b = RoomBuilder.standard(version, join_rule="invite")
    with pytest.raises(AuthError, match=r"4\.7\.1"):
        b.knock(BOB)
    b.set_join_rule(ALICE, "knock")
    assert "4.7.2" in rejected(b, ALICE, "m.room.member", {"membership": "knock"}, BOB)
    b.knock(BOB)
    b.invite(ALICE, CAROL)
    with pytest.raises(AuthError, match=r"4\.7\.4"):
        b.knock(CAROL)


@pytest.mark.parametrize("version", VERSIONS)
def test_unknown_membership(version: str) -> None:
    b = RoomBuilder.standard(version)
    assert "4.8" in rejected(b, BOB, "m.room.member", {"membership": "wave"}, BOB)
    assert "4.1" in rejected(b, BOB, "m.room.member", {}, BOB)


# -- non-member events ----------------------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_non_members_cannot_send(version: str) -> None:
    b = RoomBuilder.standard(version)
    assert "rule 5" in rejected(b, BOB, "m.room.message", {"body": "hi"})


@pytest.mark.parametrize("version", VERSIONS)
def test_events_default_and_state_default(version: str) -> None:
    b = RoomBuilder.standard(version)
    b.join(BOB)
    b.message(BOB)
    assert "rule 7" in rejected(b, BOB, "m.room.topic", {"topic": "t"}, "")
    b.set_power_levels(ALICE, {**b.power_levels(), "events_default": 10, "state_default": 0,
                               "events": {"m.room.power_levels": 100}})
    assert "rule 7" in rejected(b, BOB, "m.room.message", {"body": "x"})
    b.send(BOB, "m.room.topic", {"topic": "t"}, "")
    assert "rule 7" in rejected(b, BOB, "m.room.power_levels", {}, "")


@pytest.mark.parametrize("version", VERSIONS)
def test_state_key_starting_with_at(version: str) -> None:
    b = RoomBuilder.standard(version)
    b.join(BOB)
    b.set_power_levels(ALICE, {**b.power_levels(), "state_default": 0})
    b.send(BOB, "org.example.profile", {}, BOB)
    assert "rule 8" in rejected(b, BOB, "org.example.profile", {}, ALICE)
    b.send(BOB, "org.example.profile", {}, "bob")


@pytest.mark.parametrize("version", VERSIONS[2:])
def test_redaction_ignores_redact_level(version: str) -> None:
    b = RoomBuilder.standard(version)
    b.join(BOB)
    target = b.message(ALICE)
    content = {"redacts": target} if b.rv.redacts_in_content else {}
    b.send(BOB, "m.room.redaction", content, redacts=None if content else target)
    b.set_power_levels(ALICE, {**b.power_levels(),
                               "events": {**b.power_levels()["events"], "m.room.redaction": 50}})
    assert "rule 7" in rejected(b, BOB, "m.room.redaction", {"redacts": target})


@pytest.mark.parametrize("version", ["1", "2"])
def test_v1_v2_redaction_needs_redact_level_or_same_server(version: str) -> None:
    """v1 rule 11: the redact level, or the redaction's event ID has the server of the
    redacted event's ID (both are $opaque:server in these versions)."""
    b = RoomBuilder.standard(version)
    b.join(BOB)
    b.join("@bobby:b.example")
    alices = b.message(ALICE)
    bobs = b.message(BOB)
    assert "v1 rule 11" in rejected_redaction(b, BOB, alices)
    b.send(BOB, "m.room.redaction", {}, redacts=bobs)
    b.send("@bobby:b.example", "m.room.redaction", {}, redacts=bobs)  # same server, any user
    b.send(ALICE, "m.room.redaction", {}, redacts=bobs)  # redact level 50
    users = {**b.power_levels()["users"], BOB: 50}
    b.set_power_levels(ALICE, {**b.power_levels(), "users": users})
    b.send(BOB, "m.room.redaction", {}, redacts=alices)


def rejected_redaction(b: RoomBuilder, sender: str, target: str) -> str:
    _, pdu = b.make(sender, "m.room.redaction", {}, redacts=target)
    with pytest.raises(AuthError) as info:
        b.check(pdu)
    return info.value.reason


@pytest.mark.parametrize("version", VERSIONS)
def test_aliases_rule_of_v1_to_v5(version: str) -> None:
    """v1-v5 rule 4: m.room.aliases is allowed when its state_key is the sender's server,
    whatever the sender's membership or power; from v6 it is a plain state event."""
    b = RoomBuilder.standard(version)
    aliases = {"aliases": ["#x:b.example"]}
    if get_room_version(version).special_case_aliases_auth:
        assert int(version) <= 5
        b.send(BOB, "m.room.aliases", aliases, "b.example")  # Bob is not even joined
        assert "v1 rule 4.2" in rejected(b, BOB, "m.room.aliases", aliases, "a.example")
        assert "v1 rule 4.1" in rejected(b, BOB, "m.room.aliases", aliases, "")
    else:
        assert int(version) >= 6
        assert "rule 5" in rejected(b, BOB, "m.room.aliases", aliases, "b.example")
        b.join(BOB)
        assert "rule 7" in rejected(b, BOB, "m.room.aliases", aliases, "b.example")
        b.send(ALICE, "m.room.aliases", aliases, "b.example")  # any server's, given the power


@pytest.mark.parametrize("version", VERSIONS)
def test_a_knock_membership_can_be_left_from_v7_only(version: str) -> None:
    """v7 rule 4.5.1 adds `knock` to the memberships one may leave; before v7 a knock in the
    state (which no accepted event can have put there) leaves nothing to leave."""
    b = RoomBuilder.standard(version)
    _, leave = b.make(BOB, "m.room.member", {"membership": "leave"}, BOB)
    state = b.auth_state()
    state[("m.room.member", BOB)] = {"type": "m.room.member", "state_key": BOB,
                                      "sender": BOB, "content": {"membership": "knock"}}
    if int(version) >= 7:
        check_auth_rules(leave, state, b.rv, is_signed_by=b.is_signed_by)
    else:
        with pytest.raises(AuthError, match=r"4\.5\.1"):
            check_auth_rules(leave, state, b.rv, is_signed_by=b.is_signed_by)


@pytest.mark.parametrize("version", ["1", "2"])
def test_v1_v2_creator_join_names_the_create_event_by_its_event_id(version: str) -> None:
    b = RoomBuilder(version)
    _, join = b.make(ALICE, "m.room.member", {"membership": "join"}, ALICE)
    assert join["prev_events"][0][0] == b.create_id == b.events[b.create_id]["event_id"]
    check_auth_rules(join, b.auth_state(), b.rv, is_signed_by=b.is_signed_by)
    state = b.auth_state()
    state[("m.room.create", "")] = {**state[("m.room.create", "")], "event_id": "$other:a.example"}
    with pytest.raises(AuthError):  # then the join does not follow the create event
        check_auth_rules(join, state, b.rv, is_signed_by=b.is_signed_by)
    del state[("m.room.create", "")]["event_id"]
    with pytest.raises(AuthError):
        check_auth_rules(join, state, b.rv, is_signed_by=b.is_signed_by)
