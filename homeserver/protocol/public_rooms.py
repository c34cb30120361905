"""The published room directory's query, as a client or a server asks it, and what of another
server's answer is kept (client-server-api.md "Listing rooms", `GET`/`POST /publicRooms`;
server-server-api.md "Public Room Directory", `GET`/`POST /_matrix/federation/v1/publicRooms`).

A client's query goes to another server in the federation API's shape: `GET` with the query
string when there is nothing to filter, else `POST` with the body (a filter has no query-string
form), as Synapse asks. The `since` token is the other server's own and passed on as it is.

Another server's page reaches local clients, so it is cut down to the spec's
`PublishedRoomsResponse`: entries that are not rooms are dropped, each kept room to the fields
of a `PublishedRoomsChunk` with the types the spec gives (`room_previews.clean_remote_summary`),
and at most the ``limit`` asked for, whatever the peer sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from homeserver.protocol.room_previews import clean_remote_summary

# What a room summary has that a directory entry has not.
_NOT_IN_CHUNK = ("allowed_room_ids", "children_state", "encryption", "room_version")


@dataclass(frozen=True, slots=True)
class PublicRoomsQuery:
    limit: int
    since: str | None = None
    search_term: str | None = None
    room_types: tuple[str | None, ...] | None = None
    third_party_instance_id: str | None = None
    include_all_networks: bool = False


@dataclass(frozen=True, slots=True)
class FederationQuery:
    """A query as another server is asked it: `params` for a GET, else a POST of `body`."""

    params: dict[str, str] | None
    body: dict[str, Any] | None


def federation_query(query: PublicRoomsQuery) -> FederationQuery:
    """``query`` in the federation API's shape (GET unless there is a filter)."""
    if query.search_term is None and query.room_types is None:
        params = {
            "limit": str(query.limit),
            "include_all_networks": "true" if query.include_all_networks else "false",
        }
        if query.third_party_instance_id is not None:
            params["third_party_instance_id"] = query.third_party_instance_id
        if query.since is not None:
            params["since"] = query.since
        return FederationQuery(params=params, body=None)
    search: dict[str, Any] = {}
    if query.search_term is not None:
        search["generic_search_term"] = query.search_term
    if query.room_types is not None:
        search["room_types"] = list(query.room_types)
    body: dict[str, Any] = {
        "limit": query.limit, "filter": search,
        "include_all_networks": query.include_all_networks,
    }
    if query.third_party_instance_id is not None:
        body["third_party_instance_id"] = query.third_party_instance_id
    if query.since is not None:
        body["since"] = query.since
    return FederationQuery(params=None, body=body)


def clean_remote_page(answer: dict[str, Any], limit: int) -> dict[str, Any] | None:
    """Another server's directory page cut down to the spec's shape, or None when it is not
    one (no `chunk` list)."""
    chunk = answer.get("chunk")
    if not isinstance(chunk, list):
        return None
    rooms = []
    for entry in chunk:
        room = clean_remote_summary(entry)
        if room is not None:
            rooms.append({k: v for k, v in room.items() if k not in _NOT_IN_CHUNK})
        if len(rooms) == limit:
            break
    page: dict[str, Any] = {"chunk": rooms}
    page.update((k, answer[k]) for k in ("next_batch", "prev_batch")
                if isinstance(answer.get(k), str) and answer[k])
    total = answer.get("total_room_count_estimate")
    if isinstance(total, int) and not isinstance(total, bool) and total >= 0:
        page["total_room_count_estimate"] = total
    return page
