"""The push gateway request body (push-gateway-api "POST /_matrix/push/v1/notify")."""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.protocol.push_gateway import (
    Device,
    RoomDetails,
    badge_notification,
    event_notification,
    priority,
    rejected_pushkeys,
    tweaks_of,
)

URL = "https://push.example.org/_matrix/push/v1/notify"
ALICE, BOB = "@alice:example.org", "@bob:example.org"
ROOM = "!room:example.org"
DETAILS = RoomDetails(room_name="Lobby", room_alias="#lobby:example.org",
                      sender_display_name="Alice")


def device(**data: Any) -> Device:
    return Device("org.example.app", "key-1", 1_700_000_123_456, {"url": URL, **data})


def message(**content: Any) -> dict[str, Any]:
    return {"type": "m.room.message", "sender": ALICE, "room_id": ROOM,
            "content": {"msgtype": "m.text", "body": "hi", **content}}


def test_a_message_carries_everything_the_spec_lists() -> None:
    actions = ["notify", {"set_tweak": "sound", "value": "default"}, {"set_tweak": "highlight"}]
    body = event_notification(message(), "$e", ROOM, BOB, actions, device(extra=1), 3, DETAILS)
    assert body == {"notification": {
        "event_id": "$e", "room_id": ROOM, "type": "m.room.message", "sender": ALICE,
        "sender_display_name": "Alice", "room_name": "Lobby", "room_alias": "#lobby:example.org",
        "prio": "high", "content": {"msgtype": "m.text", "body": "hi"},
        "counts": {"unread": 3},
        "devices": [{
            "app_id": "org.example.app", "pushkey": "key-1", "pushkey_ts": 1_700_000_123,
            "data": {"extra": 1}, "tweaks": {"sound": "default", "highlight": True},
        }],
    }}


def test_unknown_room_details_are_left_out() -> None:
    body = event_notification(message(), "$e", ROOM, BOB, ["notify"], device(), 1, RoomDetails())
    assert not {"sender_display_name", "room_name", "room_alias"} & set(body["notification"])


def test_event_id_only_sends_only_what_element_x_asks_for() -> None:
    body = event_notification(
        message(), "$e", ROOM, BOB, ["notify"], device(format="event_id_only"), 1, DETAILS
    )
    note = body["notification"]
    assert set(note) == {"event_id", "room_id", "counts", "prio", "devices"}
    assert note["devices"][0]["data"] == {"format": "event_id_only"}


def test_encrypted_events_go_without_their_content() -> None:
    pdu = {"type": "m.room.encrypted", "sender": ALICE,
           "content": {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "xyz"}}
    note = event_notification(pdu, "$e", ROOM, BOB, ["notify"], device(), 1, DETAILS)
    assert "content" not in note["notification"]
    assert note["notification"]["prio"] == "high"


def test_an_invite_names_its_target() -> None:
    pdu = {"type": "m.room.member", "sender": ALICE, "state_key": BOB,
           "content": {"membership": "invite"}}
    note = event_notification(pdu, "$e", ROOM, BOB, ["notify"], device(), 1, DETAILS)
    assert note["notification"]["user_is_target"] is True
    assert note["notification"]["prio"] == "high"
    other = event_notification(pdu, "$e", ROOM, ALICE, ["notify"], device(), 1, DETAILS)
    assert other["notification"]["user_is_target"] is False


@pytest.mark.parametrize(
    ("pdu", "prio"),
    [
        (message(), "high"),
        ({"type": "m.room.encrypted", "content": {}}, "high"),
        ({"type": "m.call.invite", "content": {}}, "high"),
        ({"type": "m.room.member", "state_key": BOB, "content": {"membership": "invite"}},
         "high"),
        ({"type": "m.room.member", "state_key": ALICE, "content": {"membership": "invite"}},
         "low"),
        ({"type": "m.room.member", "state_key": BOB, "content": {"membership": "join"}}, "low"),
        ({"type": "m.room.topic", "state_key": "", "content": {"topic": "t"}}, "low"),
        ({"type": "m.reaction", "content": {}}, "low"),
    ],
)
def test_priority(pdu: dict[str, Any], prio: str) -> None:
    assert priority(pdu, BOB) == prio


def test_a_badge_update_has_only_counts_and_devices() -> None:
    body = badge_notification(device(format="event_id_only"), 0)
    assert body == {"notification": {
        "counts": {"unread": 0},
        "devices": [{"app_id": "org.example.app", "pushkey": "key-1",
                     "pushkey_ts": 1_700_000_123, "data": {"format": "event_id_only"},
                     "tweaks": {}}],
    }}


def test_tweaks() -> None:
    assert tweaks_of(["notify"]) == {}
    assert tweaks_of([{"set_tweak": "highlight", "value": False}]) == {"highlight": False}
    assert tweaks_of("junk") == {}
    assert tweaks_of([{"set_tweak": 3}, "dont_notify"]) == {}


def test_rejected_pushkeys() -> None:
    assert rejected_pushkeys({"rejected": ["a", 1, "b"]}) == {"a", "b"}
    assert rejected_pushkeys({"rejected": []}) == set()
    assert rejected_pushkeys({}) == set()
    assert rejected_pushkeys(None) == set()
    assert rejected_pushkeys({"rejected": "a"}) == set()
