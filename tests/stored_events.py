"""Rows for the `events` table built directly, for storage tests below the event-building code."""

from __future__ import annotations

import json

from storage.events import NewEvent, StoredEvent


def new_event(room_id: str, n: int) -> NewEvent:
    """A minimal `events` row, numbered so that tests can check order by its content."""
    pdu = {"room_id": room_id, "type": "m.room.message", "content": {"n": n}}
    stored = StoredEvent(
        event_id=f"$e{n}", room_id=room_id, stream_ordering=None, depth=n,
        type="m.room.message", state_key=None, sender="@u:origin.example", json=json.dumps(pdu),
        state_group=None, rejected=False, replaces_state=None, redacted_by=None,
    )
    return NewEvent(stored, n, [], [])


