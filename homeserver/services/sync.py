"""/sync (Client-Server API "Syncing"): everything that changed for a user between two tokens.

Theory of operation. A token is the tuple of stream positions (`StreamToken`). A request reads
`Streams.current()` as the token it will hand out (`next_batch`) and returns what lies between
`since` and it: rooms whose events, membership, receipts, typing or room account data moved, and
global account data. An initial sync (no `since`) returns every room in full.

Long-polling: the request registers with the notifier *before* reading the streams, computes,
and if nothing concerns this user it waits for a wake-up (or the timeout) and computes again, so
a change landing between the read and the wait is never missed. A stream that did not move costs
no query at all; an incremental sync in which only other rooms moved costs two.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import asyncpg

from homeserver.config import Config
from homeserver.errors import invalid_param
from homeserver.protocol.canonical_json import loads_bounded
from homeserver.services.account_data import GLOBAL, AccountDataService
from homeserver.services.clock import Clock
from homeserver.services.e2e_keys import E2EKeysService
from homeserver.services.ephemeral import ReceiptsService, TypingService
from homeserver.services.event_views import never_a_reader
from homeserver.services.filters import Filter, FilterError, FiltersService
from homeserver.services.ignored_users import ignored_users
from homeserver.services.lazy_members import LazyMembers
from homeserver.services.notifier import Notifier, answered_after_wake, wait_for_wake
from homeserver.services.presence import PresenceService
from homeserver.services.requester import Requester
from homeserver.services.rooms.view import RoomView
from homeserver.services.streams import Streams, StreamToken
from homeserver.services.sync_rooms import (
    RoomWindow,
    invite_state,
    lazy_hero_members,
    member_event_at,
    membership_before,
    membership_of,
    room_summary,
    room_timeline_and_state,
)
from homeserver.services.to_device import ToDeviceService
from homeserver.services.unread_counts import UnreadCounts
from storage import events as events_store
from storage import state as state_store
from storage.database import Database
from storage.push import MAIN

NO_NOTIFICATIONS = {"notification_count": 0, "highlight_count": 0}


def _counts(notifications: int, highlights: int) -> dict[str, int]:
    return {"notification_count": notifications, "highlight_count": highlights}


def _joins(events: list[dict[str, Any]]) -> set[str]:
    """Users whose join (not a profile change of a member) is among these client events."""
    return {
        e["state_key"] for e in events
        if e.get("type") == "m.room.member" and isinstance(e.get("state_key"), str)
        and e.get("content", {}).get("membership") == "join"
        and e.get("unsigned", {}).get("prev_content", {}).get("membership") != "join"
    }


@dataclass(frozen=True, slots=True)
class SyncRequest:
    since: StreamToken | None = None
    timeout_ms: int = 0
    full_state: bool = False
    filter: str | None = None  # inline filter JSON or the ID of an uploaded filter
    set_presence: str | None = None  # online (the default), unavailable or offline
    use_state_after: bool = False  # rooms carry `state_after` instead of `state` (spec v1.16)


@dataclass(slots=True)
class _Rooms:
    """The user's rooms by section, as of the token being issued."""

    joined: list[tuple[str, bool]]  # (room_id, joined since `since`)
    invited: list[tuple[str, str]]  # (room_id, invite event)
    knocked: list[tuple[str, str]]  # (room_id, knock event)
    left: list[tuple[str, int, str]]  # (room_id, position of the leave, its event ID)


@dataclass(frozen=True, slots=True)
class SyncParts:
    """The services whose streams /sync reads. The composition root builds them, because the
    API routes, push and federation use the same instances."""

    filters: FiltersService
    account_data: AccountDataService
    typing: TypingService
    receipts: ReceiptsService
    to_device: ToDeviceService
    presence: PresenceService
    unread: UnreadCounts


class SyncService:
    def __init__(
        self, db: Database, config: Config, engine: RoomView, notifier: Notifier,
        streams: Streams, clock: Clock, *, e2e_keys: E2EKeysService, parts: SyncParts,
    ) -> None:
        self.db = db
        self.clock = clock
        self.e2e_keys = e2e_keys
        self.config = config
        self.engine = engine
        self.notifier = notifier
        self.streams = streams
        self.filters = parts.filters
        self.account_data = parts.account_data
        self.typing = parts.typing
        self.receipts = parts.receipts
        self.to_device = parts.to_device
        self.presence = parts.presence
        self.unread = parts.unread
        self.lazy_members = LazyMembers()

    async def sync(self, requester: Requester, request: SyncRequest) -> dict[str, Any]:
        """The /sync response body; waits up to the timeout while nothing is new."""
        flt = await self._filter(requester.user_id, request.filter)
        await self.presence.sync_activity(requester.user_id, request.set_presence)
        timeout_ms = min(max(request.timeout_ms, 0), self.config.limits.sync_timeout_max_ms)
        deadline = self.clock.monotonic() + timeout_ms / 1000
        may_wait = request.since is not None and not request.full_state
        woken_at = None
        while True:
            with self.notifier.listen(requester.user_id) as woken:
                body, has_updates = await self._compute(requester, request, flt)
                remaining = deadline - self.clock.monotonic()
                if has_updates or not may_wait or remaining <= 0:
                    if has_updates:
                        answered_after_wake(woken_at)
                    return body
                if not await wait_for_wake(woken, remaining):
                    return body
                woken_at = woken.result()

    async def _filter(self, user_id: str, param: str | None) -> Filter:
        if param is None:
            return Filter()
        if param.lstrip().startswith("{"):
            try:
                return Filter.parse(loads_bounded(param))
            except (ValueError, FilterError) as e:
                raise invalid_param(f"Invalid filter: {e}") from None
        if not param.isascii() or not param.isdigit():
            raise invalid_param("filter must be a filter ID or a JSON object")
        return await self.filters.get(user_id, param)

    async def _compute(
        self, requester: Requester, request: SyncRequest, flt: Filter
    ) -> tuple[dict[str, Any], bool]:
        since = request.since
        upto = self.streams.current()
        body: dict[str, Any] = {
            "next_batch": upto.encode(),
            "account_data": {"events": []},
            "presence": {"events": []},
            "to_device": {"events": []},
            "device_lists": {"changed": [], "left": []},
            "device_one_time_keys_count": {},
            "rooms": {"join": {}, "invite": {}, "leave": {}, "knock": {}},
        }
        async with self.db.connection() as conn:
            changes = await self.account_data.changes(
                conn, requester.user_id, since.account_data if since else 0, upto.account_data
            )
            room_data: dict[str, list[dict[str, Any]]] = {}
            for entry in changes:
                event = {"type": entry.type, "content": entry.content}
                if entry.room_id == GLOBAL:
                    if flt.account_data.allows(event):
                        body["account_data"]["events"].append(event)
                elif flt.room.account_data.allows(event, entry.room_id):
                    room_data.setdefault(entry.room_id, []).append(event)
            delivery = await self.to_device.deliver(
                conn, requester, since.to_device if since else 0, upto.to_device
            )
            body["to_device"]["events"] = delivery.events
            if delivery.capped_at is not None:  # the next sync picks up the rest
                body["next_batch"] = replace(upto, to_device=delivery.capped_at).encode()
            counts, unused_fallback = await self.e2e_keys.key_counts(conn, requester)
            body["device_one_time_keys_count"] = counts
            presence = await self.presence.events(
                conn, requester.user_id, since.presence if since else 0, upto.presence
            )
            body["presence"]["events"] = [e for e in presence if flt.presence.allows(e)]
            body["device_unused_fallback_key_types"] = unused_fallback
            if since is not None:
                changed, left = await self.e2e_keys.device_lists.changes(
                    conn, requester.user_id, since, upto
                )
                body["device_lists"] = {"changed": changed, "left": left}
            newcomers = await self._rooms(
                conn, requester, request, upto, flt, room_data, body["rooms"]
            )
            if since is not None and newcomers:
                await self._newcomers_presence(conn, newcomers, upto, flt, body["presence"])
        rooms = body["rooms"]
        has_updates = bool(
            body["account_data"]["events"] or body["to_device"]["events"]
            or body["presence"]["events"]
            or body["device_lists"]["changed"] or body["device_lists"]["left"]
            or rooms["join"] or rooms["invite"] or rooms["leave"] or rooms["knock"]
        )
        return body, has_updates

    async def _rooms(
        self, conn: asyncpg.Connection, requester: Requester, request: SyncRequest,
        upto: StreamToken, flt: Filter, room_data: dict[str, list[dict[str, Any]]],
        out: dict[str, Any],
    ) -> set[str]:
        """Fill `out` (the `rooms` section); returns the users the syncing user came to share
        a room with in this response (whose presence it owes)."""
        since = request.since
        newcomers: set[str] = set()
        full = since is None or request.full_state
        if since is not None and not full and not room_data and (
            since.events >= upto.events and since.receipts >= upto.receipts
            and since.typing >= upto.typing
        ):
            return newcomers  # the hot path: nothing moved, nothing to read
        rooms = await self._classify(conn, requester.user_id, since, upto, flt)
        ignored = await ignored_users(conn, requester.user_id)
        after = since.events if since is not None else 0
        joined_ids = [room_id for room_id, _ in rooms.joined]
        moved: set[str] = set()
        if since is not None and not full and since.events < upto.events:
            held = self.engine.recent.rooms_changed(joined_ids, after, upto.events)
            moved = held if held is not None else await events_store.get_rooms_changed(
                conn, joined_ids, after, upto.events
            )
        receipts = await self.receipts.events(
            conn, requester.user_id, joined_ids, since.receipts if since else 0, upto.receipts
        )
        typing = self.typing.events(joined_ids, since.typing if since else None)
        for room_id, newly_joined in rooms.joined:
            ephemeral = [
                e for e in (typing.get(room_id), receipts.get(room_id))
                if e is not None and flt.room.ephemeral.allows(e, room_id)
            ]
            account_data = room_data.get(room_id, [])
            full_room = full or newly_joined
            if not (full_room or room_id in moved or ephemeral or account_data):
                continue
            # A room joined since `since` reads as in an initial sync (its timeline may reach
            # back before the join), and is `limited` as the reference server has it: the
            # client holds none of the room's history.
            window = RoomWindow(
                room_id, 0 if newly_joined else after, upto.events, full_room,
                request.use_state_after, newly_joined,
            )
            section = await self._room(
                conn, requester, window, flt, room_id in moved, ignored
            )
            if newly_joined:
                section["timeline"]["limited"] = True
                joined = await state_store.get_members(conn, room_id, ["join"])
                newcomers.update(m["user_id"] for m in joined)
            else:
                newcomers.update(_joins(section["timeline"]["events"]))
            timeline = section["timeline"]
            if not (full_room or ephemeral or account_data or timeline["events"]
                    or timeline["limited"] or section[window.state_section]["events"]):
                continue  # what moved is hidden from this user (an ignored sender's events)
            section["ephemeral"] = {"events": ephemeral}
            section["account_data"] = {"events": account_data}
            section["unread_notifications"] = dict(NO_NOTIFICATIONS)
            out["join"][room_id] = section
        if out["join"] and flt.room.timeline.unread_thread_notifications:
            await self._thread_counts(conn, requester.user_id, upto, out["join"])
        elif out["join"]:
            counts = await self.unread.get(
                conn, requester.user_id, list(out["join"]), upto.events
            )
            for room_id, (notifications, highlights) in counts.items():
                out["join"][room_id]["unread_notifications"] = _counts(notifications, highlights)
        inviters = await events_store.get_events(
            conn, [e for _, e in rooms.invited]
        ) if ignored and rooms.invited else {}
        for room_id, invite_id in rooms.invited:
            if invite_id in inviters and inviters[invite_id].sender in ignored:
                continue  # spec "Ignoring Users": their invites are not sent
            events = await invite_state(conn, self.engine, room_id, invite_id)
            out["invite"][room_id] = {"invite_state": {"events": events}}
        for room_id, knock_id in rooms.knocked:
            # The room as an outsider sees it, ending with the knock (sync.yaml KnockedRoom).
            events = await invite_state(conn, self.engine, room_id, knock_id)
            out["knock"][room_id] = {"knock_state": {"events": events}}
        for room_id, left_at, leave_id in rooms.left:
            window = RoomWindow(room_id, after, left_at, full, request.use_state_after)
            section = await self._room(conn, requester, window, flt, True, ignored)
            if await never_a_reader(conn, self.engine, room_id, leave_id):
                # Never a member: their own membership events (the timeline's visibility
                # filter leaves those), not the room's state or members.
                section[window.state_section] = {"events": []}
                section.pop("summary", None)
            section["account_data"] = {"events": room_data.get(room_id, [])}
            out["leave"][room_id] = section
        newcomers.discard(requester.user_id)
        return newcomers

    async def _thread_counts(
        self, conn: asyncpg.Connection, user_id: str, upto: StreamToken,
        joined: dict[str, dict[str, Any]],
    ) -> None:
        """Counts split by thread (sync.yaml `unread_thread_notifications`, asked for by the
        timeline filter): the main timeline's in `unread_notifications`, each thread's under
        its root (threads with nothing unread left out, as Synapse does)."""
        counts = await self.unread.by_thread(conn, user_id, list(joined), upto.events)
        for room_id, section in joined.items():
            by_thread = counts.get(room_id, {})
            section["unread_notifications"] = _counts(*by_thread.get(MAIN, (0, 0)))
            section["unread_thread_notifications"] = {
                root: _counts(*count) for root, count in by_thread.items() if root != MAIN
            }

    async def _newcomers_presence(
        self, conn: asyncpg.Connection, newcomers: set[str], upto: StreamToken, flt: Filter,
        out: dict[str, Any],
    ) -> None:
        """Add the current presence of users newly sharing a room with the syncing user (its
        change may be older than `since`), unless the response already carries it."""
        have = {e["sender"] for e in out["events"]}
        wanted = sorted(newcomers - have)
        for event in await self.presence.current_events(conn, wanted, upto.presence):
            if flt.presence.allows(event):
                out["events"].append(event)

    async def _room(
        self, conn: asyncpg.Connection, requester: Requester, window: RoomWindow, flt: Filter,
        moved: bool, ignored: frozenset[str],
    ) -> dict[str, Any]:
        """Timeline, state and (when membership may have changed) summary of one room."""
        if not (window.full_state or moved):
            return {
                "timeline": {
                    "events": [], "limited": False,
                    "prev_batch": StreamToken(events=window.upto).encode(),
                },
                window.state_section: {"events": []},
            }
        now = self.clock.now_ms()
        section = await room_timeline_and_state(
            conn, self.engine, requester, window, flt, ignored, self.lazy_members, now
        )
        shown = section["timeline"]["events"] + section[window.state_section]["events"]
        if window.full_state or any(e.get("type") == "m.room.member" for e in shown):
            summary = section["summary"] = await room_summary(
                conn, self.engine, window.room_id, requester.user_id
            )
            if flt.room.state.lazy_load_members and summary.get("m.heroes"):
                present = {e.get("state_key") for e in shown if e.get("type") == "m.room.member"}
                section[window.state_section]["events"] += await lazy_hero_members(
                    conn, self.engine, requester, window, summary["m.heroes"],
                    {k for k in present if isinstance(k, str)}, flt, self.lazy_members, now,
                )
        return section

    async def _classify(
        self, conn: asyncpg.Connection, user_id: str, since: StreamToken | None,
        upto: StreamToken, flt: Filter,
    ) -> _Rooms:
        """Sort the user's rooms into join/invite/knock/leave for this response.

        A membership newer than `upto` counts as it was at `upto`; the next sync sees the change.
        """
        rooms = _Rooms([], [], [], [])
        for row in (await self.engine.memberships(conn, user_id)).values():
            room_id, event_id, position = row.room_id, row.event_id, row.stream_ordering
            membership: str | None = row.membership
            if row.forgotten or not flt.room.allows_room(room_id):
                continue
            if position > upto.events:
                # Changed while this sync ran: answer with the membership as of `upto`, so
                # the room's events up to `upto` are not skipped; the next sync sees the change.
                earlier = await member_event_at(conn, event_id, upto.events)
                if earlier is None:
                    continue
                event_id, position = earlier.event_id, earlier.stream_ordering or 0
                membership = membership_of(earlier)
            changed = since is None or position > since.events
            if membership == "join":
                newly = since is not None and changed and await membership_before(
                    conn, event_id, since.events
                ) != "join"
                rooms.joined.append((room_id, newly))
            elif membership == "invite" and changed:
                rooms.invited.append((room_id, event_id))
            elif membership == "knock" and changed:
                rooms.knocked.append((room_id, event_id))
            elif membership in ("leave", "ban") and changed:
                if since is not None or flt.room.include_leave:
                    rooms.left.append((room_id, position, event_id))
        return rooms
