"""The room cluster's parts, built together: they share one cache and one writer, so they are
made in one place and handed out one by one (readers take `cache` as a `RoomView`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from homeserver.protocol.retention import RetentionLimits
from homeserver.services.clock import Clock
from homeserver.services.notifier import Notifier
from homeserver.services.rooms.cache import RoomCache
from homeserver.services.rooms.extremities import ExtremityMerger
from homeserver.services.rooms.local import LocalEvents
from homeserver.services.rooms.outliers import Outliers
from homeserver.services.rooms.recent import RecentEvents
from homeserver.services.rooms.remote import RemoteEvents
from homeserver.services.rooms.writes import RoomWrites
from storage.database import Database
from storage.streams import StreamIdGenerator


@dataclass(frozen=True, slots=True)
class RoomCluster:
    cache: RoomCache
    writes: RoomWrites
    local: LocalEvents
    remote: RemoteEvents
    outliers: Outliers


def build_room_cluster(
    db: Database, *, server_name: str, signing_key: Any, max_members: int, notifier: Notifier,
    stream: StreamIdGenerator, event_cache_max_bytes: int, recent_events_max_bytes: int,
    clock: Clock, retention: RetentionLimits | None,
) -> RoomCluster:
    cache = RoomCache(
        server_name=server_name, event_cache_max_bytes=event_cache_max_bytes,
        recent=RecentEvents(stream.current, max_bytes=recent_events_max_bytes),
        retention=retention, clock=clock,
    )
    writes = RoomWrites(db, cache, stream=stream, notifier=notifier)
    local = LocalEvents(
        cache, writes, signing_key=signing_key, max_members=max_members, clock=clock
    )
    merger = ExtremityMerger(cache, local, clock)
    return RoomCluster(
        cache, writes, local,
        RemoteEvents(cache, writes, max_members=max_members, crowded=merger.crowded),
        Outliers(cache, writes),
    )
