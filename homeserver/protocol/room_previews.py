"""Who may see a room's summary without being in it, and what of another server's summaries
is kept: the rules of the space hierarchy (client-server-api.md "Spaces", `GET /hierarchy`;
server-server-api.md "Spaces", `GET /hierarchy/{roomId}`) and of room summaries (v1.15).

A room may be previewed by whoever could peek on or join it: a member (a local user joined or
invited; a server with a joined user), anyone when its join rule is `public`, `knock` or
`knock_restricted` or its history is `world_readable`, and, for a `restricted` room (or
`knock_restricted`), whoever is joined to one of the rooms its join rule allows (the spec's
`allowed_room_ids`; Synapse's `_is_local_room_accessible` and `_is_remote_room_accessible`).

Another server's summaries reach local clients, so they are cut down to the fields of the
spec's `room_summary.yaml` with the types it gives; a child event that is not a valid
`m.space.child` (no `via`) is dropped, and `allowed_room_ids` is kept to `MAX_ALLOWED_ROOMS`.
What is kept of a summary is bounded too, since this server caches peers' answers: the first
`MAX_CHILDREN_STATE` children in the spec's order, each child's content cut to the three
fields the walk reads (`via`, at most `MAX_VIA_SERVERS` of them; `order`; `suggested`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeserver.protocol.identifiers import is_valid_room_id
from homeserver.protocol.restricted_joins import allowed_rooms

OPEN_JOIN_RULES = ("public", "knock", "knock_restricted")
RESTRICTED_JOIN_RULES = ("restricted", "knock_restricted")
SPACE_CHILD = "m.space.child"
# The rooms of a peer's `allowed_room_ids` kept (the first ones): the list is the peer's to make
# as long as its answer allows, and each is checked against this server's memberships. A join
# rule allowing more rooms than this is not one a user would meet.
MAX_ALLOWED_ROOMS = 50
# The children of a peer's summary kept (the first in the spec's order), and the servers of a
# child's `via`: a space of more children than this is a directory, not a space one walks.
MAX_CHILDREN_STATE = 200
MAX_VIA_SERVERS = 10

_STRINGS = ("avatar_url", "canonical_alias", "join_rule", "name", "topic", "room_type",
            "encryption", "room_version")
_BOOLEANS = ("guest_can_join", "world_readable")


def open_to_all(summary: Mapping[str, Any]) -> bool:
    """A room anyone may preview, by its summary's join rule and history visibility."""
    return summary.get("join_rule") in OPEN_JOIN_RULES or summary.get("world_readable") is True


def rooms_allowing(join_rules: Mapping[str, Any], restricted: bool) -> list[str]:
    """The rooms whose joined members may preview (and join) a room with these join rules;
    none unless the rule is restricted in this room's version (``restricted``)."""
    return allowed_rooms(join_rules) if restricted else []


def is_valid_child(content: Mapping[str, Any], suggested_only: bool) -> bool:
    """A child event counts only with a non-empty `via` (spec `m.space.child`)."""
    via = content.get("via")
    if not isinstance(via, list) or not via:
        return False
    return not suggested_only or content.get("suggested") is True


def child_order(child: Mapping[str, Any]) -> tuple[Any, ...]:
    """The spec's ordering: children with a valid `order` first, by it; then by timestamp,
    then by room ID."""
    order = child["content"].get("order")
    valid = (
        isinstance(order, str) and len(order) <= 50
        and all(0x20 <= ord(c) <= 0x7E for c in order)
    )
    key = (child["origin_server_ts"], child["state_key"])
    return (0, order, *key) if valid else (1, "", *key)


def clean_remote_summary(summary: Any, room_id: str | None = None) -> dict[str, Any] | None:
    """A peer's room summary cut down to the spec's fields (None when it is not one, or not
    of ``room_id``); `children_state` is kept, sorted, only when the peer gave it."""
    if not isinstance(summary, dict):
        return None
    rid, joined = summary.get("room_id"), summary.get("num_joined_members")
    if not isinstance(rid, str) or not is_valid_room_id(rid) or (room_id and rid != room_id):
        return None
    if not isinstance(joined, int) or isinstance(joined, bool) or joined < 0:
        return None
    out: dict[str, Any] = {"room_id": rid, "num_joined_members": joined}
    for key in _BOOLEANS:
        out[key] = summary.get(key) is True
    out.update((k, summary[k]) for k in _STRINGS if isinstance(summary.get(k), str))
    allowed = summary.get("allowed_room_ids")
    if isinstance(allowed, list):
        out["allowed_room_ids"] = [
            r for r in allowed if isinstance(r, str) and is_valid_room_id(r)
        ][:MAX_ALLOWED_ROOMS]
    children = summary.get("children_state")
    if isinstance(children, list):
        out["children_state"] = sorted(
            (c for c in map(_clean_child, children) if c is not None), key=child_order
        )[:MAX_CHILDREN_STATE]
    return out


def _clean_child(event: Any) -> dict[str, Any] | None:
    if not isinstance(event, dict):
        return None
    child = {k: event.get(k) for k in ("type", "state_key", "content", "sender",
                                       "origin_server_ts")}
    ts = child["origin_server_ts"]
    if (
        child["type"] != SPACE_CHILD or not isinstance(child["state_key"], str)
        or not is_valid_room_id(child["state_key"]) or not isinstance(child["sender"], str)
        or not isinstance(ts, int) or isinstance(ts, bool)
        or not isinstance(child["content"], dict)
        or not is_valid_child(child["content"], False)
    ):
        return None
    content = child["content"]
    child["content"] = {
        "via": [s for s in content["via"] if isinstance(s, str)][:MAX_VIA_SERVERS],
        **{k: content[k] for k in ("order", "suggested") if k in content},
    }
    return child
