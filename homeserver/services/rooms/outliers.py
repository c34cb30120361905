"""Outliers: events fetched for their part in auth chains and state (to fill a gap or to join
a room), stored with no place in the timeline and no state of their own, each checked against
its auth events only."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import asyncpg

from homeserver.protocol import auth_rules, hashing
from homeserver.protocol.errors import InvalidEventError
from homeserver.protocol.event_refs import referenced_event_ids
from homeserver.protocol.room_versions import RoomVersion
from homeserver.services.censoring import censor_arriving
from homeserver.services.rooms import checks
from homeserver.services.rooms.cache import RoomCache
from homeserver.services.rooms.checks import MissingEvents
from homeserver.services.rooms.writes import RoomWrites, unplaced_row
from storage import events as events_store
from storage.events import NewEvent


class Outliers:
    def __init__(self, cache: RoomCache, writes: RoomWrites) -> None:
        self.cache = cache
        self.writes = writes

    async def store(self, room_id: str, pdus: Iterable[Mapping[str, Any]]) -> set[str]:
        """Store events fetched for their part in auth chains or state, in auth order, and
        return the IDs among them this server now holds as *accepted* (not rejected; events
        that are malformed, of another room or missing auth events are not stored)."""
        accepted: set[str] = await self.writes.write(
            room_id, "store_outliers",
            lambda conn, slot: self._store(conn, room_id, list(pdus)),
        )
        return accepted

    async def _store(
        self, conn: asyncpg.Connection, room_id: str, pdus: list[Mapping[str, Any]]
    ) -> set[str]:
        room_version = await self.cache.room_version(conn, room_id)
        by_id: dict[str, dict[str, Any]] = {}
        for pdu in pdus:
            try:
                auth_rules.check_event_format(pdu, room_version)
            except InvalidEventError:
                continue
            pdu_id = hashing.compute_event_id(pdu, room_version)
            if _belongs_to(pdu, pdu_id, room_id, room_version):
                by_id.setdefault(pdu_id, dict(pdu))
        known = await events_store.get_events(conn, list(by_id))
        todo = await censor_arriving(
            conn, self.cache, room_id, {i: p for i, p in by_id.items() if i not in known}
        )
        new: list[NewEvent] = []
        rejected: set[str] = {i for i, e in known.items() if e.rejected}
        stored: dict[str, dict[str, Any]] = {}  # this batch's, as its later events see them
        for event_id in _auth_order(todo):
            pdu = todo[event_id]
            try:
                reason = await checks.auth_events_refusal(
                    conn, self.cache, room_id, room_version, pdu, stored, rejected
                )
            except MissingEvents:
                continue  # not stored, so it can be fetched again when it is wanted
            if reason is not None:
                rejected.add(event_id)
            stored[event_id] = pdu
            new.append(unplaced_row(room_id, event_id, pdu, None, reason=reason, outlier=True))
        if new:
            await events_store.insert_events(conn, new)
        return (set(known) | set(stored)) - rejected


def _auth_order(pdus: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Event IDs ordered so that each comes after its auth events among `pdus` (a depth-first
    walk with an explicit stack: auth chains may be thousands of events long). The events
    have passed the format check, so `depth` is an integer and `auth_events` a list."""
    order: list[str] = []
    done: set[str] = set()
    for root in sorted(pdus, key=lambda i: (pdus[i]["depth"], i)):
        stack: list[tuple[str, bool]] = [(root, False)]
        on_path: set[str] = set()
        while stack:
            event_id, expanded = stack.pop()
            if expanded:
                on_path.discard(event_id)
                if event_id not in done:
                    done.add(event_id)
                    order.append(event_id)
                continue
            if event_id in done or event_id in on_path or event_id not in pdus:
                continue
            on_path.add(event_id)
            stack.append((event_id, True))
            stack.extend(
                (a, False) for a in reversed(referenced_event_ids(pdus[event_id]["auth_events"]))
            )
    return order


def _belongs_to(
    pdu: Mapping[str, Any], event_id: str, room_id: str, room_version: RoomVersion
) -> bool:
    """Whether a fetched event is of this room: its room_id, or for a v12 create event (which
    has none) its ID, of which the room ID is made."""
    if "room_id" in pdu:
        return bool(pdu["room_id"] == room_id)
    return room_version.room_id_from_create_event and event_id == hashing.create_event_id(room_id)
