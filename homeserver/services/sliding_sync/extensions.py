"""The extensions of a sliding sync response (MSC3885 to-device, MSC3884 e2ee, MSC3959
account data, MSC3960 receipts, MSC3961 typing), read from the same services as /sync.

Each enabled extension is in the response, as the reference server writes it; the rooms an
extension reports on are those of the lists and subscriptions it names (`ExtensionConfig
.scope`). A room sent `initial` in this response gets its typing and account data as they
are, not as they changed (the client holds nothing of it), and, as the reference server
does, the receipts of its timeline's events and the user's own, not those of every member.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from homeserver.protocol.sliding_sync import Extensions
from homeserver.services.account_data import GLOBAL, AccountDataService
from homeserver.services.e2e_keys import E2EKeysService
from homeserver.services.ephemeral import ReceiptsService, TypingService
from homeserver.services.requester import Requester
from homeserver.services.streams import StreamToken
from homeserver.services.to_device import ToDeviceService


@dataclass(frozen=True, slots=True)
class Scope:
    """The rooms of the response: by list (the rooms in its ranges), subscribed, and those
    sent `initial` with the events of their timelines."""

    lists: Mapping[str, list[str]]
    subscribed: frozenset[str]
    initial: Mapping[str, frozenset[str]]


class SlidingSyncExtensions:
    def __init__(
        self, *, to_device: ToDeviceService, e2e_keys: E2EKeysService,
        account_data: AccountDataService, receipts: ReceiptsService, typing: TypingService,
    ) -> None:
        self.to_device = to_device
        self.e2e_keys = e2e_keys
        self.account_data = account_data
        self.receipts = receipts
        self.typing = typing

    async def compute(
        self, conn: asyncpg.Connection, requester: Requester, config: Extensions,
        since: StreamToken | None, upto: StreamToken, scope: Scope,
    ) -> tuple[dict[str, Any], bool]:
        """(the `extensions` object, whether it holds anything new)."""
        out: dict[str, Any] = {}
        news = False
        if config.to_device.enabled:
            out["to_device"], fresh = await self._to_device(
                conn, requester, config.to_device.since, config.to_device.limit, upto
            )
            news |= fresh
        if config.e2ee.enabled:
            out["e2ee"], fresh = await self._e2ee(conn, requester, since, upto)
            news |= fresh
        if config.account_data.enabled:
            rooms = config.account_data.scope(scope.lists, scope.subscribed)
            out["account_data"], fresh = await self._account_data(
                conn, requester.user_id, since, upto, rooms, frozenset(scope.initial)
            )
            news |= fresh
        if config.receipts.enabled:
            rooms = config.receipts.scope(scope.lists, scope.subscribed)
            out["receipts"] = {"rooms": await self._receipts(
                conn, requester.user_id, since, upto, rooms, scope.initial
            )}
            news |= bool(out["receipts"]["rooms"])
        if config.typing.enabled:
            rooms = config.typing.scope(scope.lists, scope.subscribed)
            typing = self.typing.events(rooms & scope.initial.keys(), None)
            if since is not None:
                typing.update(self.typing.events(
                    rooms - scope.initial.keys(), since.typing, upto.typing
                ))
            out["typing"] = {"rooms": typing}
            news |= bool(typing)
        return out, news

    async def _to_device(
        self, conn: asyncpg.Connection, requester: Requester, since: int | None, limit: int,
        upto: StreamToken,
    ) -> tuple[dict[str, Any], bool]:
        """Messages after `since` (which acknowledges, and so deletes, those up to it)."""
        after = since or 0
        if after > upto.to_device:  # a token from the future: nothing is known past it
            return {"next_batch": str(after), "events": []}, False
        delivery = await self.to_device.deliver(
            conn, requester, after, upto.to_device, limit=limit
        )
        next_batch = delivery.capped_at if delivery.capped_at is not None else upto.to_device
        return {"next_batch": str(next_batch), "events": delivery.events}, bool(delivery.events)

    async def _e2ee(
        self, conn: asyncpg.Connection, requester: Requester, since: StreamToken | None,
        upto: StreamToken,
    ) -> tuple[dict[str, Any], bool]:
        counts, fallback = await self.e2e_keys.key_counts(conn, requester)
        out: dict[str, Any] = {
            "device_one_time_keys_count": counts, "device_unused_fallback_key_types": fallback,
        }
        if since is None:
            return out, False
        changed, left = await self.e2e_keys.device_lists.changes(
            conn, requester.user_id, since, upto
        )
        out["device_lists"] = {"changed": changed, "left": left}
        return out, bool(changed or left)

    async def _account_data(
        self, conn: asyncpg.Connection, user_id: str, since: StreamToken | None,
        upto: StreamToken, rooms: set[str], initial: frozenset[str],
    ) -> tuple[dict[str, Any], bool]:
        after = since.account_data if since is not None else 0
        changes = await self.account_data.changes(conn, user_id, after, upto.account_data)
        global_data = [
            {"type": c.type, "content": c.content} for c in changes if c.room_id == GLOBAL
        ]
        by_room: dict[str, list[dict[str, Any]]] = {}
        for c in changes:
            if c.room_id != GLOBAL and c.room_id in rooms and c.room_id not in initial:
                by_room.setdefault(c.room_id, []).append({"type": c.type, "content": c.content})
        fresh_rooms = rooms & initial
        if fresh_rooms:
            everything = changes if after == 0 else await self.account_data.changes(
                conn, user_id, 0, upto.account_data
            )
            for c in everything:
                if c.room_id in fresh_rooms:
                    by_room.setdefault(c.room_id, []).append(
                        {"type": c.type, "content": c.content}
                    )
        return {"global": global_data, "rooms": by_room}, bool(global_data or by_room)

    async def _receipts(
        self, conn: asyncpg.Connection, user_id: str, since: StreamToken | None,
        upto: StreamToken, rooms: set[str], initial: Mapping[str, frozenset[str]],
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        fresh = sorted(rooms & initial.keys())
        for room_id, event in (
            await self.receipts.events(conn, user_id, fresh, 0, upto.receipts)
        ).items():
            content = _receipts_of(event["content"], initial[room_id], user_id)
            if content:
                out[room_id] = {"type": "m.receipt", "content": content}
        if since is not None:
            out.update(await self.receipts.events(
                conn, user_id, sorted(rooms - initial.keys()), since.receipts, upto.receipts
            ))
        return out


def _receipts_of(
    content: dict[str, Any], timeline: frozenset[str], user_id: str
) -> dict[str, Any]:
    """The receipts of an m.receipt content on the timeline's events, and the user's own."""
    out: dict[str, Any] = {}
    for event_id, by_type in content.items():
        for receipt_type, by_user in by_type.items():
            kept = {u: data for u, data in by_user.items()
                    if event_id in timeline or u == user_id}
            if kept:
                out.setdefault(event_id, {})[receipt_type] = kept
    return out
