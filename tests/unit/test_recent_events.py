"""RecentEvents answers a room window only when it holds every event of it, or its newest
`limit`, like the query it replaces; otherwise it says so (None) and the caller reads the
database."""

from __future__ import annotations

from homeserver.services.rooms.recent import RecentEvents
from storage.events import StoredEvent

UNBOUNDED = 2**62


def event(
    room: str, position: int, kind: str = "m.room.message", sender: str = "@a:x",
    json: str = "{}",
) -> StoredEvent:
    return StoredEvent(
        event_id=f"${room}{position}", room_id=room, stream_ordering=position, depth=position,
        type=kind, state_key="@a:x" if kind == "m.room.member" else None, sender=sender,
        json=json, state_group=None, rejected=False, replaces_state=None, redacted_by=None,
    )


def ids(events: list[StoredEvent] | None) -> list[str] | None:
    return None if events is None else [e.event_id for e in events]


def test_a_window_is_served_newest_first_within_its_bounds() -> None:
    recent = RecentEvents(known_since=10, max_bytes=UNBOUNDED)
    previous = 5
    for position in (11, 12, 14):
        recent.append(event("!r", position), previous)
        previous = position
    assert ids(recent.window("!r", after=11, upto=14, limit=10)) == ["$!r14", "$!r12"]
    assert ids(recent.window("!r", after=11, upto=13, limit=10)) == ["$!r12"]
    assert ids(recent.window("!r", after=5, upto=14, limit=2)) == ["$!r14", "$!r12"]


def test_a_window_reaching_before_what_is_held_goes_to_the_database() -> None:
    recent = RecentEvents(known_since=10, max_bytes=UNBOUNDED)
    recent.append(event("!r", 11), 7)  # the room's previous event was at 7
    assert recent.window("!r", after=6, upto=11, limit=10) is None
    assert ids(recent.window("!r", after=7, upto=11, limit=10)) == ["$!r11"]


def test_a_window_whose_newest_events_are_held_is_served_though_it_reaches_before() -> None:
    """A first sync's timeline after a restart: the tail started at 11 (the room's previous
    event was at 7), and the newest two events of (0, 14] are both held."""
    recent = RecentEvents(known_since=10, max_bytes=UNBOUNDED)
    previous = 7
    for position in (11, 12, 14):
        recent.append(event("!r", position), previous)
        previous = position
    assert ids(recent.window("!r", after=0, upto=14, limit=2)) == ["$!r14", "$!r12"]
    assert ids(recent.window("!r", after=0, upto=13, limit=2)) == ["$!r12", "$!r11"]
    assert recent.window("!r", after=0, upto=14, limit=4) is None  # the fourth is not held
    assert recent.window("!r", after=0, upto=14, limit=2, senders=["@b:x"]) is None
    assert recent.rooms_changed(["!r"], 0, 14) == {"!r"}


def test_a_room_without_events_since_known_since_has_none_and_earlier_is_unknown() -> None:
    recent = RecentEvents(known_since=10, max_bytes=UNBOUNDED)
    assert recent.window("!quiet", after=10, upto=20, limit=5) == []
    assert recent.window("!quiet", after=9, upto=20, limit=5) is None
    assert recent.rooms_changed(["!quiet"], 9, 20) is None


def test_eviction_moves_the_bounds_forward() -> None:
    recent = RecentEvents(known_since=0, max_bytes=UNBOUNDED, per_room=2, max_events=2)
    recent.append(event("!r", 1), None)
    recent.append(event("!r", 2), 1)
    recent.append(event("!r", 3), 2)  # evicts position 1
    assert recent.window("!r", after=0, upto=3, limit=5) is None
    assert ids(recent.window("!r", after=1, upto=3, limit=5)) == ["$!r3", "$!r2"]
    recent.append(event("!s", 4), None)  # evicts room !r, which last moved at 3
    assert recent.window("!r", after=2, upto=9, limit=5) is None
    assert recent.window("!r", after=3, upto=9, limit=5) == []


def test_filters_rooms_changed_member_events_and_redactions() -> None:
    recent = RecentEvents(known_since=0, max_bytes=UNBOUNDED)
    recent.append(event("!r", 1, "m.room.member"), None)
    recent.append(event("!r", 2, sender="@b:x"), 1)
    recent.append(event("!s", 3), None)
    assert ids(recent.window("!r", after=0, upto=9, limit=9, types=["m.room.member"])) == ["$!r1"]
    assert ids(recent.window("!r", after=0, upto=9, limit=9, senders=["@b:x"])) == ["$!r2"]
    assert recent.rooms_changed(["!r", "!s", "!t"], 2, 9) == {"!s"}
    assert ids(recent.member_events(["!r", "!s"], 0, 9)) == ["$!r1"]
    recent.redact("!r", "$!r2", "$redaction")
    held = recent.window("!r", after=1, upto=2, limit=1)
    assert held is not None and held[0].redacted_by == "$redaction"


def test_eviction_by_bytes_of_json() -> None:
    """Big events are bounded by their size, however few: 63 KB events in a 200 KB budget."""
    big = "x" * 63_000
    recent = RecentEvents(known_since=0, max_bytes=200_000)
    previous: dict[str, int] = {}
    for position, room in enumerate(["!a", "!a", "!b", "!c"], start=1):
        recent.append(event(room, position, json=big), previous.get(room))
        previous[room] = position
    assert recent.bytes == 2 * 63_000  # !a went, both of its events
    # The least recently written room went whole, and says so.
    assert recent.window("!a", after=0, upto=9, limit=9) is None
    assert ids(recent.window("!a", after=2, upto=9, limit=9)) == []
    assert ids(recent.window("!c", after=3, upto=9, limit=9)) == ["$!c4"]
    recent.append(event("!c", 5, json="x" * 150_000), 4)  # only !c left, then its newest
    assert recent.bytes == 150_000
    assert recent.window("!c", after=3, upto=9, limit=9) is None
    assert ids(recent.window("!c", after=4, upto=9, limit=9)) == ["$!c5"]


def test_purged_events_leave_the_tail_which_still_answers_for_the_rest() -> None:
    recent = RecentEvents(known_since=10, max_bytes=UNBOUNDED)
    previous = 10
    for position in (11, 12, 13, 14):
        recent.append(event("!r", position, json="{1}"), previous)
        previous = position
    recent.discard("!r", {"$!r11", "$!r13"})
    assert ids(recent.window("!r", after=10, upto=14, limit=10)) == ["$!r14", "$!r12"]
    assert recent.bytes == 2 * len("{1}")
    recent.append(event("!r", 15), 14)  # the tail goes on from its newest event
    assert ids(recent.window("!r", after=10, upto=15, limit=10)) == ["$!r15", "$!r14", "$!r12"]
