"""Rules of event relationships the server applies itself (client-server-api "Forming
relationships between events", modules "Event replacements" and "Threading").

Pure functions over event fields: which edit of an event is the one to bundle, and whether an
event may become a thread root.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# The rel_types whose children the server aggregates into `unsigned.m.relations`. Reactions
# (`m.annotation`) are left out, as the spec leaves their aggregation to clients since v1.7.
REPLACE = "m.replace"
THREAD = "m.thread"
REFERENCE = "m.reference"
AGGREGATED = (REPLACE, THREAD, REFERENCE)

ENCRYPTED = "m.room.encrypted"


@dataclass(frozen=True, slots=True)
class Edit:
    """An `m.replace` child as far as its validity and order go."""

    event_id: str
    sender: str
    type: str
    is_state: bool
    origin_server_ts: int
    has_new_content: bool


def relation_of(content: Mapping[str, Any]) -> tuple[str, str] | None:
    """`(rel_type, event_id)` of an event's `m.relates_to`, if it has a well-formed one."""
    relates_to = content.get("m.relates_to")
    if not isinstance(relates_to, dict):
        return None
    rel_type, parent = relates_to.get("rel_type"), relates_to.get("event_id")
    if isinstance(rel_type, str) and isinstance(parent, str):
        return rel_type, parent
    return None


def latest_valid_edit(
    original_sender: str, original_type: str, original_is_state: bool,
    original_content: Mapping[str, Any], edits: Iterable[Edit],
) -> str | None:
    """The replacement to bundle with an original event ("Validity of replacement events" and
    "Server-side aggregation of `m.replace` relationships"): same sender and type, neither a
    state event, the original not itself an edit, the replacement carrying `m.new_content`
    (unless encrypted: the server cannot look inside, so that check is the client's); the
    greatest `origin_server_ts`, ties to the lexicographically largest event ID. Same room is
    the caller's to ensure."""
    if original_is_state:
        return None
    own = relation_of(original_content)
    if own is not None and own[0] == REPLACE:
        return None
    valid = [
        e for e in edits
        if e.sender == original_sender and e.type == original_type and not e.is_state
        and (e.has_new_content or e.type == ENCRYPTED)
    ]
    if not valid:
        return None
    return max(valid, key=lambda e: (e.origin_server_ts, e.event_id)).event_id


def thread_root(content: Mapping[str, Any]) -> str | None:
    """The root of the thread an event replies in (`rel_type` `m.thread`), if any."""
    relation = relation_of(content)
    return relation[1] if relation is not None and relation[0] == THREAD else None


def may_start_thread(parent_content: Mapping[str, Any]) -> bool:
    """Whether an event may be a thread root (threading.md "Validation of `m.thread`
    relationships"): not if its `m.relates_to` has a `rel_type` — so a thread reply, an edit or
    a reaction can't start a thread, and threads never nest. A rich reply (`m.in_reply_to`
    only) may, as the same section's "an `m.relates_to` property with a `rel_type`" and
    Synapse have it: Element offers "Reply in thread" on replies."""
    relates_to = parent_content.get("m.relates_to")
    return not (isinstance(relates_to, dict) and "rel_type" in relates_to)
