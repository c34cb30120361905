"""Sync filters (Client-Server API "Filtering"): parsed once into frozen values, then matched.

A filter arrives as JSON (uploaded to `/user/{userId}/filter` or inline in `/sync?filter=`).
`Filter.parse` checks its shape and turns it into the values below, so the sync loop never
re-inspects raw JSON. `types`/`not_types` accept `*` as a wildcard for any sequence of
characters; a `not_*` list always wins over its positive list. `FiltersService` stores and
loads uploaded filters.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import asyncpg

from homeserver.config import QuotasConfig
from homeserver.errors import bad_json, not_found
from homeserver.protocol.identifiers import is_valid_room_id, is_valid_user_id
from homeserver.services.fill_cache import FillCache
from homeserver.services.quotas import check_size, over_quota
from storage import filters as filters_store
from storage.database import Database

EVENT_FORMATS = ("client", "federation")
_PARSED_CACHE_SIZE = 10_000


class FilterError(ValueError):
    """The filter JSON does not have the shape the spec gives it."""


@lru_cache(maxsize=1024)
def _pattern(glob: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in glob.split("*")), re.DOTALL)


def _matches_any(value: str, patterns: tuple[str, ...]) -> bool:
    return any(_pattern(p).fullmatch(value) for p in patterns)


def _strings(raw: dict[str, Any], key: str, where: str) -> tuple[str, ...] | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise FilterError(f"{where}{key} must be an array of strings")
    return tuple(value)


def _ids(
    raw: dict[str, Any], key: str, where: str, valid: Callable[[str], bool], what: str
) -> tuple[str, ...] | None:
    """A list of user or room IDs (as the reference server checks them: a filter naming
    something that cannot exist is a client's mistake worth a 400, not a filter that
    silently matches nothing)."""
    value = _strings(raw, key, where)
    if value is not None and not all(valid(v) for v in value):
        raise FilterError(f"{where}{key} must be an array of {what}")
    return value


def _bool(raw: dict[str, Any], key: str, where: str) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        raise FilterError(f"{where}{key} must be a boolean")
    return value


def _object(raw: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise FilterError(f"{where}{key} must be an object")
    return value


@dataclass(frozen=True, slots=True)
class EventFilter:
    """An `EventFilter` or `RoomEventFilter`; the room-only fields stay at their defaults."""

    limit: int | None = None
    types: tuple[str, ...] | None = None
    not_types: tuple[str, ...] = ()
    senders: tuple[str, ...] | None = None
    not_senders: tuple[str, ...] = ()
    rooms: tuple[str, ...] | None = None
    not_rooms: tuple[str, ...] = ()
    contains_url: bool | None = None
    lazy_load_members: bool = False
    include_redundant_members: bool = False
    # Unread counts split per thread in /sync (`unread_thread_notifications`, spec v1.4).
    unread_thread_notifications: bool = False

    @classmethod
    def parse(cls, raw: dict[str, Any], where: str) -> EventFilter:
        limit = raw.get("limit")
        if limit is not None and (
            not isinstance(limit, int) or isinstance(limit, bool) or limit < 0
        ):
            raise FilterError(f"{where}limit must be a non-negative integer")
        contains_url = raw.get("contains_url")
        if contains_url is not None and not isinstance(contains_url, bool):
            raise FilterError(f"{where}contains_url must be a boolean")
        return cls(
            limit=limit,
            types=_strings(raw, "types", where),
            not_types=_strings(raw, "not_types", where) or (),
            senders=_ids(raw, "senders", where, is_valid_user_id, "user IDs"),
            not_senders=_ids(raw, "not_senders", where, is_valid_user_id, "user IDs") or (),
            rooms=_ids(raw, "rooms", where, is_valid_room_id, "room IDs"),
            not_rooms=_ids(raw, "not_rooms", where, is_valid_room_id, "room IDs") or (),
            contains_url=contains_url,
            lazy_load_members=_bool(raw, "lazy_load_members", where),
            include_redundant_members=_bool(raw, "include_redundant_members", where),
            unread_thread_notifications=_bool(raw, "unread_thread_notifications", where),
        )

    def allows_type(self, event_type: str) -> bool:
        if _matches_any(event_type, self.not_types):
            return False
        return self.types is None or _matches_any(event_type, self.types)

    def allows_sender(self, sender: str) -> bool:
        if sender in self.not_senders:
            return False
        return self.senders is None or sender in self.senders

    def allows_room(self, room_id: str) -> bool:
        if room_id in self.not_rooms:
            return False
        return self.rooms is None or room_id in self.rooms

    def allows(self, event: dict[str, Any], room_id: str | None = None) -> bool:
        """Whether an event (any form with `type`, `sender`, `content`) passes the filter."""
        if not self.allows_type(str(event.get("type", ""))):
            return False
        sender = event.get("sender")
        if sender is not None and not self.allows_sender(sender):
            return False
        if room_id is not None and not self.allows_room(room_id):
            return False
        if self.contains_url is not None:
            content = event.get("content")
            has_url = isinstance(content, dict) and "url" in content
            return has_url == self.contains_url
        return True

    def sql_types(self) -> list[str] | None:
        """`types` when the database can apply it exactly (no wildcard), else None."""
        if self.types is None or any("*" in t for t in self.types):
            return None
        return list(self.types)

    def sql_senders(self) -> list[str] | None:
        return list(self.senders) if self.senders is not None else None


@dataclass(frozen=True, slots=True)
class RoomFilter:
    rooms: tuple[str, ...] | None = None
    not_rooms: tuple[str, ...] = ()
    include_leave: bool = False
    timeline: EventFilter = field(default_factory=EventFilter)
    state: EventFilter = field(default_factory=EventFilter)
    ephemeral: EventFilter = field(default_factory=EventFilter)
    account_data: EventFilter = field(default_factory=EventFilter)

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> RoomFilter:
        def sub(key: str) -> EventFilter:
            return EventFilter.parse(_object(raw, key, "room."), f"room.{key}.")

        return cls(
            rooms=_ids(raw, "rooms", "room.", is_valid_room_id, "room IDs"),
            not_rooms=_ids(raw, "not_rooms", "room.", is_valid_room_id, "room IDs") or (),
            include_leave=_bool(raw, "include_leave", "room."),
            timeline=sub("timeline"),
            state=sub("state"),
            ephemeral=sub("ephemeral"),
            account_data=sub("account_data"),
        )

    def allows_room(self, room_id: str) -> bool:
        if room_id in self.not_rooms:
            return False
        return self.rooms is None or room_id in self.rooms


@dataclass(frozen=True, slots=True)
class Filter:
    """A whole sync filter; `Filter()` is the filter that lets everything through."""

    event_fields: tuple[str, ...] | None = None
    event_format: str = "client"
    presence: EventFilter = field(default_factory=EventFilter)
    account_data: EventFilter = field(default_factory=EventFilter)
    room: RoomFilter = field(default_factory=RoomFilter)

    @classmethod
    def parse(cls, raw: Any) -> Filter:
        """Raises FilterError naming the offending field."""
        if not isinstance(raw, dict):
            raise FilterError("a filter must be a JSON object")
        event_format = raw.get("event_format", "client")
        if event_format not in EVENT_FORMATS:
            raise FilterError("event_format must be 'client' or 'federation'")
        return cls(
            event_fields=_strings(raw, "event_fields", ""),
            event_format=event_format,
            presence=EventFilter.parse(_object(raw, "presence", ""), "presence."),
            account_data=EventFilter.parse(_object(raw, "account_data", ""), "account_data."),
            room=RoomFilter.parse(_object(raw, "room", "")),
        )

    def project(self, event: dict[str, Any]) -> dict[str, Any]:
        """Keep only `event_fields` (dot paths, `\\.` for a literal dot) of a client event."""
        if self.event_fields is None:
            return event
        out: dict[str, Any] = {}
        for spec in self.event_fields:
            path = [p.replace("\0", ".") for p in spec.replace("\\.", "\0").split(".")]
            _copy_path(event, out, path)
        return out


def _copy_path(src: dict[str, Any], dst: dict[str, Any], path: list[str]) -> None:
    head, rest = path[0], path[1:]
    if head not in src:
        return
    if not rest:
        dst[head] = src[head]
        return
    child = src[head]
    if isinstance(child, dict):
        target = dst.setdefault(head, {})
        if isinstance(target, dict):
            _copy_path(child, target, rest)


class FiltersService:
    """Uploaded filters: stored as sent; parsed when a sync names them, and kept parsed (a
    filter never changes once uploaded). A user keeps at most `quotas.max_filters_per_user`
    of at most `quotas.max_filter_bytes` each."""

    def __init__(self, db: Database, quotas: QuotasConfig) -> None:
        self.db = db
        self.quotas = quotas
        self._parsed: FillCache[tuple[str, str], Filter] = FillCache("filters", _PARSED_CACHE_SIZE)

    async def create(self, user_id: str, raw: dict[str, Any]) -> str:
        """Store a filter after checking its shape (M_BAD_JSON when it is wrong)."""
        try:
            Filter.parse(raw)
        except FilterError as e:
            raise bad_json(f"Invalid filter: {e}") from None
        quotas = self.quotas
        check_size(raw, "A filter", quotas.max_filter_bytes)

        async def insert(conn: asyncpg.Connection) -> int:
            if await filters_store.count_filters(conn, user_id) >= quotas.max_filters_per_user:
                raise over_quota("filters per user", quotas.max_filters_per_user)
            return await filters_store.insert_filter(conn, user_id, raw)

        return str(await self.db.transaction(insert, name="create_filter"))

    async def get_raw(self, user_id: str, filter_id: str) -> dict[str, Any]:
        """The filter as uploaded, or M_NOT_FOUND."""
        number = int(filter_id) if filter_id.isascii() and filter_id.isdigit() else None
        raw = None
        if number is not None and number < 2**63:
            raw = await self.db.run(lambda conn: filters_store.get_filter(conn, user_id, number))
        if raw is None:
            raise not_found("No such filter")
        return raw

    async def get(self, user_id: str, filter_id: str) -> Filter:
        async def load() -> Filter:
            raw = await self.get_raw(user_id, filter_id)
            try:
                return Filter.parse(raw)
            except FilterError:
                raise not_found("No such filter") from None

        return await self._parsed.get_or_load((user_id, filter_id), load)
