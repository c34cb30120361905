"""Minimal rows for storage tests: users with devices, rooms, events and memberships.

Storage functions only need the columns they read, so these builders write just enough of a
row (an event's JSON holds only what SQL looks into) instead of standing up a server.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import asyncpg

from storage import accounts, rooms, state
from storage import events as events_store
from storage.events import NewEvent, StoredEvent


async def add_user(conn: asyncpg.Connection, user_id: str, *device_ids: str) -> None:
    """A user (no password) with the given devices."""
    assert await accounts.insert_user(conn, user_id, None, False, 0)
    for device_id in device_ids:
        assert await accounts.insert_device(conn, user_id, device_id, None, 0)


async def add_room(conn: asyncpg.Connection, room_id: str, *, is_public: bool = False) -> None:
    await rooms.insert_room(conn, room_id, "10", "@creator:x", 0, is_public)


def event(
    event_id: str, room_id: str, *, stream: int | None, depth: int | None = None,
    type: str = "m.room.message", state_key: str | None = None, sender: str = "@u:x",
    content: dict[str, Any] | None = None, ts: int = 0, prev: Sequence[str] = (),
    auth: Sequence[str] = (), replaces: str | None = None, rejected: bool = False,
    soft_failed: bool = False, outlier: bool = False,
) -> NewEvent:
    """An `events` row whose JSON carries type, state key, sender and content; the depth
    defaults to the stream position (0 for events without one)."""
    pdu: dict[str, Any] = {
        "room_id": room_id, "type": type, "sender": sender, "content": content or {},
    }
    if state_key is not None:
        pdu["state_key"] = state_key
    stored = StoredEvent(
        event_id=event_id, room_id=room_id, stream_ordering=stream,
        depth=depth if depth is not None else (stream or 0), type=type, state_key=state_key,
        sender=sender, json=json.dumps(pdu), state_group=None, rejected=rejected,
        replaces_state=replaces, redacted_by=None,
    )
    return NewEvent(
        stored, ts, list(prev), list(auth), rejection_reason="refused" if rejected else None,
        soft_failed=soft_failed, outlier=outlier,
    )


def numbered_event(room_id: str, n: int) -> NewEvent:
    """A minimal `events` row `$e<n>`, numbered so that tests can check order by its content."""
    return event(f"$e{n}", room_id, stream=None, depth=n, content={"n": n}, ts=n)


async def insert(conn: asyncpg.Connection, *new: NewEvent) -> None:
    await events_store.insert_events(conn, new)


def member(
    event_id: str, room_id: str, user_id: str, membership: str, *, stream: int | None,
    **row: Any,
) -> NewEvent:
    """An m.room.member event of `user_id`, sent by them (`row`: more of `event`'s options)."""
    return event(
        event_id, room_id, stream=stream, type="m.room.member", state_key=user_id,
        sender=user_id, content={"membership": membership}, **row,
    )


async def set_membership(
    conn: asyncpg.Connection, room_id: str, user_id: str, membership: str, *, stream: int
) -> None:
    """Store a member event at `stream` and make it the user's membership (no event checks:
    the room_memberships row is what membership reads look at)."""
    event_id = f"$m{stream}"
    await insert(conn, member(event_id, room_id, user_id, membership, stream=stream))
    await state.upsert_membership(conn, room_id, user_id, membership, event_id, stream)


async def set_state(
    conn: asyncpg.Connection, room_id: str, type: str, content: dict[str, Any], *, stream: int,
    state_key: str = "", json_text: str | None = None,
) -> str:
    """Store a state event at `stream` and make it the room's current state for its key;
    `json_text` replaces the stored JSON (for JSON that PostgreSQL cannot read as jsonb)."""
    new = event(
        f"$s{stream}", room_id, stream=stream, type=type, state_key=state_key, content=content
    )
    if json_text is not None:
        new = replace(new, stored=replace(new.stored, json=json_text))
    await insert(conn, new)
    await state.upsert_current_state(conn, room_id, (type, state_key), new.stored.event_id)
    return new.stored.event_id
