"""Server-side search (Client-Server API "Server Side Search") over room events.

Theory of operation. The room cluster indexes the plain text of every `m.room.message` body,
`m.room.name` and `m.room.topic` in the transaction that persists it (`storage.search`);
encrypted events have no plaintext and are never indexed. A search runs PostgreSQL full-text
search (`websearch_to_tsquery`, so quotes and `-word` work) over the rooms the user is joined
to, skips redacted events, and then applies history visibility and the request's filter to
the page, exactly as /messages does.

Pagination: `rank` order pages by offset (`k<offset>`), `recent` order by stream position
(`r<position>`: results strictly older), so new messages never shift a recent-order page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from homeserver.errors import invalid_param
from homeserver.services.aggregations import serialize_with_relations
from homeserver.services.clock import Clock
from homeserver.services.event_views import filter_visible, load_events, serialize_events
from homeserver.services.filters import EventFilter
from homeserver.services.ignored_users import ignored_users
from homeserver.services.requester import Requester
from homeserver.services.rooms.view import RoomView
from homeserver.services.streams import MAX_POSITION, StreamToken
from storage import events as events_store
from storage import search as search_store
from storage import state as state_store
from storage.database import Database
from storage.search import SearchHit, SearchQuery
from storage.streams import StreamIdGenerator

DEFAULT_LIMIT = 10
MAX_LIMIT = 50
MAX_CONTEXT = 20
ORDERS = ("rank", "recent")
GROUP_KEYS = ("room_id", "sender")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class SearchCriteria:
    """The `room_events` criteria of a search request, validated."""

    search_term: str
    keys: tuple[str, ...] = search_store.SEARCH_KEYS
    order_by: str = "rank"
    filter: EventFilter = field(default_factory=EventFilter)
    context: tuple[int, int] | None = None  # (before_limit, after_limit)
    include_profile: bool = False
    include_state: bool = False
    group_by: tuple[str, ...] = ()


def _parse_batch(token: str | None, order_by: str) -> int:
    """The offset (rank) or the stream position to continue below (recent)."""
    if token is None:
        return 0 if order_by == "rank" else MAX_POSITION
    prefix, digits = token[:1], token[1:]
    if prefix != ("k" if order_by == "rank" else "r") or not (
        digits.isascii() and digits.isdigit() and len(digits) <= 18
    ):
        raise invalid_param("'next_batch' is not a token from a search in this order")
    return int(digits)


class SearchService:
    def __init__(
        self, db: Database, engine: RoomView, stream: StreamIdGenerator, clock: Clock
    ) -> None:
        self.db = db
        self.engine = engine
        self.stream = stream
        self.clock = clock

    async def search(
        self, requester: Requester, criteria: SearchCriteria, next_batch: str | None
    ) -> dict[str, Any]:
        """The `room_events` result category for one page."""
        position = _parse_batch(next_batch, criteria.order_by)

        async def run(conn: asyncpg.Connection) -> dict[str, Any]:
            return await self._search(conn, requester, criteria, position)

        return await self.db.run(run, name="search")

    async def _search(
        self, conn: asyncpg.Connection, requester: Requester, criteria: SearchCriteria,
        position: int,
    ) -> dict[str, Any]:
        flt = criteria.filter
        rows = await state_store.get_rooms_for_user(conn, requester.user_id, ["join"])
        room_ids = [r["room_id"] for r in rows if flt.allows_room(r["room_id"])]
        limit = min(flt.limit or DEFAULT_LIMIT, MAX_LIMIT)
        query = SearchQuery(
            term=criteria.search_term, room_ids=room_ids, keys=criteria.keys,
            types=flt.sql_types(), senders=flt.sql_senders(), not_senders=flt.not_senders,
            limit=limit,
        )
        if criteria.order_by == "rank":
            hits = await search_store.search_by_rank(conn, query, position)
        else:
            hits = await search_store.search_by_recent(conn, query, position)
        total = hits[0].total if hits else 0
        # Read once for the hits and every context around them (each filters and bundles).
        ignored = await ignored_users(conn, requester.user_id)
        visible = await self._visible(conn, requester, hits, flt, ignored)
        results = []
        for hit, event in visible:
            result: dict[str, Any] = {"rank": hit.rank, "result": event}
            if criteria.context is not None:
                result["context"] = await self._context(
                    conn, requester, hit, criteria, ignored
                )
            results.append(result)
        body: dict[str, Any] = {
            "results": results,
            "highlights": await self._highlights(conn, criteria.search_term),
        }
        if position == 0 and len(hits) == total and len(visible) == len(hits):
            # `count` is optional. The total comes from before history visibility, so it is
            # given only when every match is on this page and visible: otherwise it could tell
            # a user how many messages they may not read contain the term.
            body["count"] = total
        if criteria.order_by == "rank" and hits and position + len(hits) < total:
            body["next_batch"] = f"k{position + len(hits)}"
        elif criteria.order_by == "recent" and hits and len(hits) < total:
            body["next_batch"] = f"r{hits[-1].stream_ordering}"
        if criteria.include_state:
            body["state"] = await self._state(conn, requester, {h.room_id for h, _ in visible})
        if criteria.group_by:
            body["groups"] = _groups(visible, criteria.group_by)
        return body

    async def _visible(
        self, conn: asyncpg.Connection, requester: Requester, hits: list[SearchHit],
        flt: EventFilter, ignored: frozenset[str],
    ) -> list[tuple[SearchHit, dict[str, Any]]]:
        """The hits the user may see (history visibility) that pass the whole filter."""
        stored = await load_events(conn, [h.event_id for h in hits])
        visible = await filter_visible(
            conn, self.engine, requester.user_id, stored, ignored=ignored
        )
        events = await serialize_with_relations(
            conn, self.engine, visible, requester, now=self.clock.now_ms(), ignored=ignored
        )
        by_id = {e["event_id"]: e for e in events if flt.allows(e)}
        return [(h, by_id[h.event_id]) for h in hits if h.event_id in by_id]

    async def _context(
        self, conn: asyncpg.Connection, requester: Requester, hit: SearchHit,
        criteria: SearchCriteria, ignored: frozenset[str],
    ) -> dict[str, Any]:
        assert criteria.context is not None
        before_n, after_n = criteria.context
        at = hit.stream_ordering
        before = await events_store.get_room_events(
            conn, hit.room_id, after=0, upto=at - 1, limit=before_n, newest_first=True
        ) if before_n else []
        after = await events_store.get_room_events(
            conn, hit.room_id, after=at, upto=self.stream.current, limit=after_n,
            newest_first=False,
        ) if after_n else []
        uid = requester.user_id
        # Both sides checked at once (same room, mostly the same state), then split:
        # filter_visible keeps the order, so the visible events before come first.
        visible = await filter_visible(conn, self.engine, uid, [*before, *after], ignored=ignored)
        before_ids = {e.event_id for e in before}
        split = sum(1 for e in visible if e.event_id in before_ids)
        # Both sides bundled at once: one summary of their children, not two.
        served = await serialize_with_relations(
            conn, self.engine, visible, requester, now=self.clock.now_ms(), ignored=ignored,
        )
        context: dict[str, Any] = {
            "events_before": served[:split],
            "events_after": served[split:],
            "start": StreamToken(events=(before[-1].stream_ordering or 1) - 1 if before
                                 else at - 1).encode(),
            "end": StreamToken(events=after[-1].stream_ordering or at if after else at).encode(),
        }
        if criteria.include_profile:
            senders = {e.sender for e in visible}
            context["profile_info"] = await self._profiles(conn, hit.room_id, senders)
        return context

    async def _profiles(
        self, conn: asyncpg.Connection, room_id: str, senders: set[str]
    ) -> dict[str, dict[str, str]]:
        """Display name and avatar of each sender, from their current member event."""
        keys = [("m.room.member", s) for s in sorted(senders)]
        state = await state_store.get_current_state_for_keys(conn, room_id, keys)
        pdus = await self.engine.get_pdus(conn, list(state.values()))
        profiles: dict[str, dict[str, str]] = {}
        for (_, user_id), event_id in state.items():
            content = pdus[event_id]["content"]
            profiles[user_id] = {
                k: content[k] for k in ("displayname", "avatar_url")
                if isinstance(content.get(k), str)
            }
        return profiles

    async def _state(
        self, conn: asyncpg.Connection, requester: Requester, room_ids: set[str]
    ) -> dict[str, list[dict[str, Any]]]:
        out = {}
        for room_id in sorted(room_ids):
            ids = await state_store.get_current_state(conn, room_id)
            stored = await load_events(conn, list(ids.values()))
            out[room_id] = await serialize_events(
                conn, self.engine, stored, requester, now=self.clock.now_ms()
            )
        return out

    async def _highlights(self, conn: asyncpg.Connection, term: str) -> list[str]:
        """The words typed and the stems searched for, for clients to highlight."""
        words = {w.lower() for w in _WORD.findall(term)}
        return sorted(words | set(await search_store.get_query_lexemes(conn, term)))


def _groups(
    visible: list[tuple[SearchHit, dict[str, Any]]], group_by: tuple[str, ...]
) -> dict[str, dict[str, Any]]:
    """`groups`: for each requested key, the result event IDs per value, in result order."""
    groups: dict[str, dict[str, Any]] = {}
    for key in group_by:
        by_value: dict[str, Any] = {}
        for _, event in visible:
            group = by_value.setdefault(event[key], {"results": [], "order": len(by_value) + 1})
            group["results"].append(event["event_id"])
        groups[key] = by_value
    return groups

