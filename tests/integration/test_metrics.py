"""The Prometheus endpoint on the metrics listener reflects the traffic the server served."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp

from tests.helpers import MatrixApi
from tests.metrics_scrape import sample, scrape

if TYPE_CHECKING:
    from tests.conftest import MakeServer, RunningServer


async def test_metrics_after_traffic(
    api: MatrixApi, homeserver: RunningServer, http: aiohttp.ClientSession
) -> None:
    alice = await api.register("alice")
    room = await api.create_room(alice)
    await api.send_message(alice, room, "one")
    await api.send_message(alice, room, "two")
    status, _ = await api.request("GET", "joined_rooms")
    assert status == 401

    text = await scrape(homeserver, http)
    send_route = "/_matrix/client/v3/rooms/{room_id}/send/{event_type}/{txn_id}"
    assert sample(
        text, "moot_http_requests_total", route=send_route, method="PUT", status="200"
    ) >= 2
    assert sample(
        text, "moot_http_requests_total", route="/_matrix/client/v3/joined_rooms",
        method="GET", status="401",
    ) >= 1
    assert sample(
        text, "moot_http_request_duration_seconds_bucket", route=send_route, method="PUT",
        le="+Inf",
    ) >= 2
    assert sample(text, "moot_events_persisted_total", type="m.room.message") >= 2
    assert sample(text, "moot_events_persisted_total", type="m.room.create") >= 1
    assert sample(text, "moot_sync_long_polls_in_flight") >= 0
    assert sample(text, "moot_db_pool_connections") >= 1
    assert sample(text, "moot_db_transaction_duration_seconds_count", name="send_events") >= 1
    sample(text, "moot_users")  # refreshed every 15 s: only its presence is certain
    assert sample(text, "process_resident_memory_bytes") > 0


async def test_event_caches_report_their_size_within_their_byte_bounds(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    """Big events fill the caches by bytes, not by count: of five 40 KB messages, caches of
    100 KB hold at most two, and the metrics say how many events and how many bytes."""
    bound = 100_000
    homeserver = await make_homeserver(overrides={
        "caches.event_cache_max_bytes": bound, "caches.recent_events_max_bytes": bound,
    })
    api = MatrixApi(homeserver.url, http)
    alice = await api.register("alice")
    room = await api.create_room(alice)
    for _ in range(5):
        await api.send_message(alice, room, "x" * 40_000)

    text = await scrape(homeserver, http)
    for cache in ("events", "recent_events"):
        size = sample(text, "moot_cache_size_bytes", cache=cache)
        entries = sample(text, "moot_cache_entries", cache=cache)
        assert 40_000 < size <= bound, (cache, size)
        assert entries >= 1, (cache, entries)
