"""The pure parts of delivery to application services: what one transaction holds and how it
is written, the retry schedule's promise (an appservice down for 20 s gets its backlog within
30 s of returning), and which member events change a room's interest."""

from __future__ import annotations

import json

from homeserver.app import APPSERVICE_BACKOFF
from homeserver.protocol.appservice import parse_registration
from homeserver.services.appservice_interest import AppServiceInterest
from homeserver.services.appservice_sender import (
    MAX_EPHEMERAL,
    MAX_EVENTS,
    UNSTABLE_EPHEMERAL,
    take_batch,
    transaction_body,
)
from storage.appservice_queue import QueuedItem


def event(position: int) -> QueuedItem:
    return QueuedItem(position, f"$e{position}", None, 0)


def ephemeral(position: int) -> QueuedItem:
    return QueuedItem(position, None, {"type": "m.typing"}, 0)


def test_a_transaction_is_the_longest_prefix_of_the_queue_within_the_limits() -> None:
    events = [event(i) for i in range(MAX_EVENTS + 20)]
    assert take_batch(events) == events[:MAX_EVENTS]
    # Ephemeral items after the event that did not fit wait for the next transaction, so
    # nothing overtakes it.
    mixed = [event(i) for i in range(MAX_EVENTS)] + [event(500), ephemeral(501)]
    assert take_batch(mixed) == mixed[:MAX_EVENTS]
    typing = [ephemeral(i) for i in range(MAX_EPHEMERAL + 1)] + [event(900)]
    assert take_batch(typing) == typing[:MAX_EPHEMERAL]
    interleaved = [event(1), ephemeral(2), event(3)]
    assert take_batch(interleaved) == interleaved
    assert take_batch([]) == []


def test_the_body_carries_ephemeral_data_under_both_names_only_when_asked() -> None:
    events = [{"type": "m.room.message", "event_id": "$a"}]
    typing = [{"type": "m.typing", "room_id": "!r:hs", "content": {"user_ids": []}}]
    assert json.loads(transaction_body(events, typing, receive_ephemeral=True)) == {
        "events": events, "ephemeral": typing, UNSTABLE_EPHEMERAL: typing,
    }
    assert json.loads(transaction_body(events, typing, receive_ephemeral=False)) == {
        "events": events
    }
    assert json.loads(transaction_body([], [], receive_ephemeral=True)) == {"events": []}


def test_an_appservice_back_after_any_outage_is_retried_within_30_seconds() -> None:
    assert APPSERVICE_BACKOFF.max_s <= 30.0
    for outage_s in (20.0, 95.0, 3600.0):
        attempt, failures = 0.0, 0
        while attempt < outage_s:  # every attempt while it is down fails
            failures += 1
            attempt += APPSERVICE_BACKOFF.delay_s(failures)
        assert attempt - outage_s <= 30.0, outage_s


def test_member_events_of_namespaced_users_change_a_rooms_interest() -> None:
    registration = parse_registration({
        "id": "b", "url": None, "as_token": "a", "hs_token": "h", "sender_localpart": "b_bot",
        "namespaces": {"users": [{"regex": "@_b_.*:hs", "exclusive": False}]},
    }, "hs")
    interest = AppServiceInterest([registration])
    assert interest.of_user("@_b_x:hs") == {"b"}
    assert interest.of_user("@b_bot:hs") == {"b"}
    assert interest.of_user("@_b_x:elsewhere") == frozenset()
    assert interest.changes_room_interest("m.room.member", "@_b_x:hs")
    assert not interest.changes_room_interest("m.room.member", "@alice:hs")
    assert not interest.changes_room_interest("m.room.message", None)
    assert not interest.changes_room_interest("m.room.name", "@_b_x:hs")
