"""The redaction algorithm of every room version: the v1 list (rooms v1-v5), v6 (6-7),
v8's (8), v9 (9-10) and v11 (11-12); expectations per version are read from the spec text."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from homeserver.protocol.redaction import redact_event
from homeserver.protocol.room_versions import (
    KNOWN_ROOM_VERSIONS,
    ROOM_V10,
    ROOM_V11,
    ROOM_V12,
    RoomVersion,
)

V11_RULES = [ROOM_V11, ROOM_V12]
ALL = list(KNOWN_ROOM_VERSIONS.values())


def number(rv: RoomVersion) -> int:
    return int(rv.identifier)


def ev(event_type: str, content: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {
        "type": event_type,
        "room_id": "!r:x",
        "sender": "@u:x",
        "state_key": "",
        "content": content,
        "hashes": {"sha256": "abc"},
        "signatures": {"x": {"ed25519:1": "sig"}},
        "depth": 1,
        "prev_events": [],
        "auth_events": [],
        "origin_server_ts": 1,
        "unsigned": {"age_ts": 1},
        **top,
    }


@pytest.mark.parametrize("rv", ALL)
def test_essential_top_level_keys_survive_and_others_go(rv: RoomVersion) -> None:
    event = ev("m.room.message", {"body": "x"}, event_id="$e", extra="junk")
    redacted = redact_event(event, rv)
    assert set(redacted) == {
        "event_id", "type", "room_id", "sender", "state_key", "content", "hashes",
        "signatures", "depth", "prev_events", "auth_events", "origin_server_ts",
    }
    assert redacted["content"] == {}


@pytest.mark.parametrize("rv", ALL)
def test_unsigned_is_dropped(rv: RoomVersion) -> None:
    assert "unsigned" not in redact_event(ev("m.room.message", {}), rv)


@pytest.mark.parametrize("rv", ALL)
def test_origin_membership_prev_state(rv: RoomVersion) -> None:
    event = ev("m.room.member", {"membership": "join"}, origin="x", membership="join",
               prev_state=[])
    redacted = redact_event(event, rv)
    for key in ("origin", "membership", "prev_state"):
        assert (key in redacted) is (number(rv) <= 10)


@pytest.mark.parametrize("rv", ALL)
def test_member_keeps_membership_and_join_authorised_from_v9(rv: RoomVersion) -> None:
    content = {"membership": "join", "join_authorised_via_users_server": "@a:x",
               "displayname": "Bob", "avatar_url": "mxc://x/y"}
    kept = {"membership": "join"}
    if number(rv) >= 9:  # rooms/v9.md: the fix v8 missed
        kept["join_authorised_via_users_server"] = "@a:x"
    assert redact_event(ev("m.room.member", content), rv)["content"] == kept


def test_member_third_party_invite_signed_v11_only() -> None:
    tpi = {"display_name": "b...", "signed": {"mxid": "@b:x", "token": "t", "signatures": {}}}
    event = ev("m.room.member", {"membership": "invite", "third_party_invite": tpi})
    assert "third_party_invite" not in redact_event(event, ROOM_V10)["content"]
    for rv in V11_RULES:
        assert redact_event(event, rv)["content"]["third_party_invite"] == {
            "signed": tpi["signed"]}
    no_signed = ev("m.room.member", {"membership": "invite",
                                     "third_party_invite": {"display_name": "b"}})
    assert redact_event(no_signed, ROOM_V11)["content"]["third_party_invite"] == {}


def test_create_keeps_creator_to_v10_and_everything_from_v11() -> None:
    content = {"creator": "@u:x", "room_version": "10", "m.federate": False, "type": "m.space"}
    for rv in ALL[:10]:
        assert redact_event(ev("m.room.create", content), rv)["content"] == {"creator": "@u:x"}
    for rv in V11_RULES:
        assert redact_event(ev("m.room.create", content), rv)["content"] == content


@pytest.mark.parametrize("rv", ALL)
def test_join_rules_keep_join_rule_and_allow_from_v8(rv: RoomVersion) -> None:
    content = {"join_rule": "restricted", "allow": [{"type": "m.room_membership"}], "x": 1}
    kept: dict[str, Any] = {"join_rule": "restricted"}
    if number(rv) >= 8:
        kept["allow"] = [{"type": "m.room_membership"}]
    assert redact_event(ev("m.room.join_rules", content), rv)["content"] == kept


@pytest.mark.parametrize("rv", ALL)
def test_aliases_keep_aliases_until_v5(rv: RoomVersion) -> None:
    content = {"aliases": ["#a:x"], "other": 1}
    kept = {"aliases": ["#a:x"]} if number(rv) <= 5 else {}
    assert redact_event(ev("m.room.aliases", content, state_key="x"), rv)["content"] == kept


@pytest.mark.parametrize("rv", ALL)
def test_power_levels_keys(rv: RoomVersion) -> None:
    invite_kept = number(rv) >= 11
    content = {"ban": 50, "events": {"a": 1}, "events_default": 0, "kick": 50, "redact": 50,
               "state_default": 50, "users": {"@u:x": 100}, "users_default": 0, "invite": 0,
               "notifications": {"room": 50}, "historical": 100}
    redacted = redact_event(ev("m.room.power_levels", content), rv)["content"]
    expected = {k: v for k, v in content.items()
                if k not in ("notifications", "historical", "invite")}
    if invite_kept:
        expected["invite"] = 0
    assert redacted == expected


@pytest.mark.parametrize("rv", ALL)
def test_history_visibility(rv: RoomVersion) -> None:
    content = {"history_visibility": "shared", "other": True}
    assert redact_event(ev("m.room.history_visibility", content), rv)["content"] == {
        "history_visibility": "shared"}


def test_redaction_redacts_key() -> None:
    v10 = ev("m.room.redaction", {"reason": "spam"}, redacts="$x")
    for rv in ALL[:10]:
        assert "redacts" not in redact_event(v10, rv)  # top-level redacts is not protected
    for rv in V11_RULES:
        v11 = ev("m.room.redaction", {"redacts": "$x", "reason": "spam"})
        assert redact_event(v11, rv)["content"] == {"redacts": "$x"}
    assert redact_event(ev("m.room.redaction", {"redacts": "$x"}), ROOM_V10)["content"] == {}


@pytest.mark.parametrize("rv", ALL)
def test_other_event_types_lose_all_content_and_input_is_untouched(rv: RoomVersion) -> None:
    event = ev("m.room.topic", {"topic": "hello"})
    before = copy.deepcopy(event)
    assert redact_event(event, rv)["content"] == {}
    assert event == before


@pytest.mark.parametrize("rv", ALL)
def test_redaction_is_idempotent(rv: RoomVersion) -> None:
    event = ev("m.room.member", {"membership": "join", "displayname": "x"}, origin="x")
    once = redact_event(event, rv)
    assert redact_event(once, rv) == once
