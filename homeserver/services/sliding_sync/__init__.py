"""Simplified Sliding Sync (MSC4186 at `org.matrix.simplified_msc3575/sync`): the service.

Theory of operation. A request names the position it continues from (`pos`: a stored
`ConnectionState` and the stream token its response was computed up to) or none (a new
connection). The response is computed against the streams' current token: the lists
(`lists.RoomLists`), the rooms in their ranges and the subscriptions (`rooms.RoomResults`),
the extensions (`extensions.SlidingSyncExtensions`); then the connection state it leaves
(which rooms were sent with what) becomes the next position, written only when it differs
from the one the client came from (`connections.Connections`), so a steady stream of new
messages in rooms the client follows costs no write.

Long-polling works as /sync's: with a `pos`, the request registers with the notifier before
computing, and while the response would carry nothing new (no room, no extension data, no
list count changed) it waits for a wake-up or the timeout and computes again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from typing import Any

import asyncpg

from homeserver.config import Config
from homeserver.protocol.sliding_sync import (
    ConnectionState,
    RoomConfig,
    SentRoom,
    SlidingSyncRequest,
    combine,
    encode_pos,
    parse_pos,
)
from homeserver.services.clock import Clock
from homeserver.services.ephemeral import ReceiptsService
from homeserver.services.notifier import Notifier, answered_after_wake, wait_for_wake
from homeserver.services.presence import PresenceService
from homeserver.services.requester import Requester
from homeserver.services.rooms.view import RoomView
from homeserver.services.sliding_sync.connections import Connections, Held, unknown_pos
from homeserver.services.sliding_sync.extensions import Scope, SlidingSyncExtensions
from homeserver.services.sliding_sync.lists import Candidate, ListResult, RoomLists
from homeserver.services.sliding_sync.rooms import Outcome, RoomRequest, RoomResults
from homeserver.services.streams import Streams, StreamToken
from homeserver.services.unread_counts import UnreadCounts
from storage.database import Database

CatchUp = Callable[[StreamToken], Awaitable[None]]


async def already_current(token: StreamToken) -> None:
    """The main process writes every stream: it has heard of every position a client holds."""


def _covered(token: StreamToken, current: StreamToken) -> bool:
    return all(getattr(token, f.name) <= getattr(current, f.name) for f in fields(token))


@dataclass(frozen=True, slots=True)
class SlidingSyncQuery:
    """The query parameters, next to the body."""

    pos: str | None = None
    timeout_ms: int = 0
    set_presence: str | None = None


@dataclass(slots=True)
class _Computed:
    body: dict[str, Any]
    state: ConnectionState
    news: bool


class SlidingSyncService:
    def __init__(
        self, db: Database, config: Config, engine: RoomView, notifier: Notifier,
        streams: Streams, clock: Clock, *, connections: Connections,
        extensions: SlidingSyncExtensions, presence: PresenceService, unread: UnreadCounts,
        receipts: ReceiptsService, catch_up: CatchUp = already_current,
    ) -> None:
        self.db = db
        self.config = config
        self.notifier = notifier
        self.streams = streams
        self.clock = clock
        self.connections = connections
        self.extensions = extensions
        self.presence = presence
        self.unread = unread
        self.receipts = receipts
        self.catch_up = catch_up
        self.lists = RoomLists(engine)
        self.rooms = RoomResults(engine)

    async def sync(
        self, requester: Requester, request: SlidingSyncRequest, query: SlidingSyncQuery
    ) -> dict[str, Any]:
        await self.presence.sync_activity(requester.user_id, query.set_presence)
        came_from: Held | None = None
        since: StreamToken | None = None
        if query.pos is not None:
            try:
                position_id, seal, token_text = parse_pos(query.pos)
                since = StreamToken.parse(token_text)
            except ValueError:
                raise unknown_pos() from None
            await self.catch_up(since)
            if not _covered(since, self.streams.current()):
                raise unknown_pos()  # positions this server never reached: not its pos
            came_from = await self.connections.load(
                requester, request.conn_id, position_id, seal, token_text
            )
        timeout_ms = min(max(query.timeout_ms, 0), self.config.limits.sync_timeout_max_ms)
        deadline = self.clock.monotonic() + timeout_ms / 1000
        previous = came_from.state if came_from is not None else ConnectionState()
        woken_at = None
        while True:
            with self.notifier.listen(requester.user_id) as woken:
                upto = self.streams.current()
                computed = await self._compute(requester, request, since, upto, previous)
                remaining = deadline - self.clock.monotonic()
                if computed.news or since is None or remaining <= 0:
                    if computed.news:
                        answered_after_wake(woken_at)
                    break
                if not await wait_for_wake(woken, remaining):
                    break
                woken_at = woken.result()
        if came_from is None:
            held = await self.connections.start(requester, request.conn_id, computed.state)
        else:
            held = await self.connections.advance(came_from, computed.state)
        computed.body["pos"] = encode_pos(held.position_id, held.secret, upto.encode())
        return computed.body

    async def _compute(
        self, requester: Requester, request: SlidingSyncRequest, since: StreamToken | None,
        upto: StreamToken, previous: ConnectionState,
    ) -> _Computed:
        user_id = requester.user_id
        now = self.clock.now_ms()
        async with self.db.connection() as conn:
            candidates = await self.lists.candidates(conn, user_id, since, upto)
            direct, ignored = await self.lists.account(conn, user_id, upto)
            direct = direct | await self._direct_invites(conn, candidates)
            lists = await self.lists.build(conn, request.lists, candidates, direct)
            wanted = self._wanted(request, lists, candidates)
            read = await self._read_moved(conn, user_id, list(wanted), since, upto)
            outcomes = await self.rooms.compute(
                conn, requester,
                {room_id: RoomRequest(candidates[room_id], config, previous.rooms.get(room_id))
                 for room_id, config in wanted.items()},
                since, upto, direct, ignored, now, read,
            )
            rooms = {room_id: o.result for room_id, o in outcomes.items() if o.result is not None}
            await self._counts(conn, user_id, outcomes, upto)
            scope = Scope(
                {name: result.rooms() for name, result in lists.items()},
                frozenset(r for r in request.room_subscriptions if r in wanted),
                {r: frozenset(e["event_id"] for e in result.get("timeline", ()))
                 for r, result in rooms.items() if result.get("initial")},
            )
            extensions, extension_news = await self.extensions.compute(
                conn, requester, request.extensions, since, upto, scope
            )
        counts = {name: result.count for name, result in lists.items()}
        state = ConnectionState(
            self._followed(request, previous, outcomes, since), counts
        )
        body: dict[str, Any] = {}
        if lists:
            body["lists"] = {name: result.to_json() for name, result in lists.items()}
        body["rooms"] = rooms
        body["extensions"] = extensions
        news = bool(rooms) or extension_news or counts != dict(previous.counts)
        return _Computed(body, state, news)

    def _wanted(
        self, request: SlidingSyncRequest, lists: dict[str, ListResult],
        candidates: dict[str, Candidate],
    ) -> dict[str, RoomConfig]:
        """Each room the response covers, with the combined configuration of the lists and
        subscriptions that name it. A subscription reaches only a room the user has a
        membership in (joined, invited, knocking, left, banned)."""
        configs: dict[str, list[RoomConfig]] = {}
        for name, result in lists.items():
            for room_id in result.rooms():
                configs.setdefault(room_id, []).append(request.lists[name].room)
        for room_id, config in request.room_subscriptions.items():
            if room_id in candidates:
                configs.setdefault(room_id, []).append(config)
        return {room_id: combine(each) for room_id, each in configs.items()}

    async def _read_moved(
        self, conn: asyncpg.Connection, user_id: str, room_ids: list[str],
        since: StreamToken | None, upto: StreamToken,
    ) -> frozenset[str]:
        """The rooms whose unread counts the user's own receipts moved since `since` (no
        query while the receipts stream is still)."""
        if since is None or since.receipts >= upto.receipts or not room_ids:
            return frozenset()
        receipts = await self.receipts.events(
            conn, user_id, room_ids, since.receipts, upto.receipts
        )
        return frozenset(
            room_id for room_id, event in receipts.items()
            if any(user_id in by_user for by_type in event["content"].values()
                   for by_user in by_type.values())
        )

    async def _direct_invites(
        self, conn: asyncpg.Connection, candidates: dict[str, Candidate]
    ) -> frozenset[str]:
        """Invites marked `is_direct`: direct chats before the client lists them in m.direct."""
        invites = [c for c in candidates.values() if c.membership == "invite"]
        if not invites:
            return frozenset()
        pdus = await self.rooms.engine.get_pdus(conn, [c.event_id for c in invites])
        return frozenset(
            c.room_id for c in invites
            if pdus.get(c.event_id, {}).get("content", {}).get("is_direct") is True
        )

    async def _counts(
        self, conn: asyncpg.Connection, user_id: str, outcomes: dict[str, Outcome],
        upto: StreamToken,
    ) -> None:
        """Fill in the unread counts of the joined rooms sent and the member counts of those
        that owe them, one query each for all rooms."""
        joined = [r for r, o in outcomes.items()
                  if o.result is not None and o.sent.membership == "join"]
        if joined:
            unread = await self.unread.get(conn, user_id, joined, upto.events)
            for room_id, (notifications, highlights) in unread.items():
                result = outcomes[room_id].result
                assert result is not None
                result["notification_count"] = notifications
                result["highlight_count"] = highlights
        owed = [r for r, o in outcomes.items() if o.result is not None and o.counts]
        if owed:
            members = await self.rooms.engine.current_state.member_counts(conn, owed)
            for room_id in owed:
                result = outcomes[room_id].result
                assert result is not None
                joined_count, invited_count = members.get(room_id, (0, 0))
                result["joined_count"] = joined_count
                result["invited_count"] = invited_count

    @staticmethod
    def _followed(
        request: SlidingSyncRequest, previous: ConnectionState, outcomes: dict[str, Outcome],
        since: StreamToken | None,
    ) -> dict[str, SentRoom]:
        """What the connection holds after this response: the rooms it covered as sent; the
        rooms it followed before but no longer covers, held up to the client's position
        (a room unsubscribed from is forgotten, so that subscribing again starts afresh)."""
        held: dict[str, SentRoom] = {}
        for room_id, sent in previous.rooms.items():
            if room_id in outcomes:
                continue
            if room_id in request.unsubscribe_rooms:
                continue
            if sent.live:
                upto = since.events if since is not None else 0
                held[room_id] = SentRoom(False, sent.membership, upto, sent.config,
                                         sent.lazy_members)
            else:
                held[room_id] = sent
        for room_id, outcome in outcomes.items():
            held[room_id] = outcome.sent
        return held
