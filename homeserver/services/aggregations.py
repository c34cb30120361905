"""Bundled aggregations (client-server-api "Aggregations of child events"): events served with
what relates to them in `unsigned.m.relations`.

- `m.replace`: the latest valid edit, whole, as the spec has it since v1.7; the original's
  content is left as it is, and a redacted original gets no edit.
- `m.thread`: the reply count and latest reply (ignored users' replies left out), and whether
  the reader took part; the latest reply comes with its own aggregations.
- `m.reference`: the IDs of the newest referencing events (storage/relations.py
  MAX_REFERENCES: anyone may reference an event, and its bundle must not grow with that).
Reactions (`m.annotation`) are not bundled: clients count them from the events.

One query summarises the children of a whole page of events (storage/relations.py), one more
loads the edits and latest replies it names; events nothing relates to cost only their index
probe in the first.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg

from homeserver.protocol.relations import REFERENCE, REPLACE, THREAD, Edit, latest_valid_edit
from homeserver.services.event_views import filter_visible, load_events, serialize_events
from homeserver.services.ignored_users import ignored_users
from homeserver.services.requester import Requester
from homeserver.services.rooms.view import RoomView
from storage.events import StoredEvent
from storage.relations import get_relation_summary

# How deep the latest reply of a thread is itself bundled: its edits (depth 1) but no thread
# of its own, which the spec forbids and a peer could still send.
_LATEST_EVENT_DEPTH = 1


async def serialize_with_relations(
    conn: asyncpg.Connection, engine: RoomView, stored: Sequence[StoredEvent],
    viewer: Requester, *, now: int, federation: bool = False, depth: int = 2,
    ignored: frozenset[str] | None = None,
) -> list[dict[str, Any]]:
    """`serialize_events` plus each event's bundled aggregations; `depth` 1 bundles edits and
    references only (for the latest reply of a thread); `ignored`: the viewer's ignored users,
    when the caller already read them."""
    events = await serialize_events(conn, engine, stored, viewer, now=now, federation=federation)
    bundles = await _bundles(conn, engine, stored, viewer, now, federation, depth, ignored)
    for event in events:
        bundle = bundles.get(event["event_id"])
        if bundle:
            event["unsigned"]["m.relations"] = bundle
    return events


async def _bundles(
    conn: asyncpg.Connection, engine: RoomView, stored: Sequence[StoredEvent],
    viewer: Requester, now: int, federation: bool, depth: int, ignored: frozenset[str] | None,
) -> dict[str, dict[str, Any]]:
    """`m.relations` by event ID for the events that have any (state events get none: spec
    "State events do not currently receive bundled aggregations")."""
    parents = {e.event_id: e for e in stored if e.state_key is None and not e.rejected}
    if not parents:
        return {}
    if ignored is None:
        ignored = await ignored_users(conn, viewer.user_id)
    summary = await get_relation_summary(conn, list(parents), viewer.user_id, sorted(ignored))
    threads = summary.threads if depth > _LATEST_EVENT_DEPTH else []
    if not (summary.edits or threads or summary.references):
        return {}
    edits = _chosen_edits(parents, summary.edits)
    wanted = [*edits.values(), *(t.latest_event for t in threads)]
    loaded = await filter_visible(
        conn, engine, viewer.user_id, await load_events(conn, wanted), ignored=ignored
    )
    edit_ids = set(edits.values())
    served = {
        e["event_id"]: e for e in await serialize_events(
            conn, engine, [e for e in loaded if e.event_id in edit_ids], viewer, now=now,
            federation=federation,
        )
    }
    served |= {
        e["event_id"]: e for e in await serialize_with_relations(
            conn, engine, [e for e in loaded if e.event_id not in edit_ids], viewer, now=now,
            federation=federation, depth=_LATEST_EVENT_DEPTH, ignored=ignored,
        )
    }
    bundles: dict[str, dict[str, Any]] = {}
    for parent, edit_id in edits.items():
        if edit_id in served:
            bundles.setdefault(parent, {})[REPLACE] = served[edit_id]
    for thread in threads:
        latest = served.get(thread.latest_event)
        if latest is not None:
            root = parents[thread.parent]
            bundles.setdefault(thread.parent, {})[THREAD] = {
                "latest_event": latest, "count": thread.count,
                "current_user_participated": thread.participated
                or root.sender == viewer.user_id,
            }
    for parent, children in summary.references.items():
        bundles.setdefault(parent, {})[REFERENCE] = {
            "chunk": [{"event_id": child} for child in children]
        }
    return bundles


def _chosen_edits(parents: dict[str, StoredEvent], edits: dict[str, Edit]) -> dict[str, str]:
    """The edit to bundle for each original whose latest candidate passes the validity rule,
    unless the original is redacted."""
    chosen = {}
    for parent_id, candidate in edits.items():
        original = parents[parent_id]
        if original.redacted_by or original.erased_for_reader:
            continue
        content = json.loads(original.json).get("content", {})
        edit = latest_valid_edit(
            original.sender, original.type, original.state_key is not None,
            content if isinstance(content, dict) else {}, [candidate],
        )
        if edit is not None:
            chosen[parent_id] = edit
    return chosen
