"""The metrics an operator's dashboard and alerts read (issue 19) move when what they count
happens, on a live server scraped over HTTP: requests in flight, a woken long-poll's delay,
cache hits and misses, rate-limit refusals, events persisted by origin, federation PDUs, EDUs
and transactions received, forward extremities, the outbox's oldest item, event-loop lag.
(tests/interop/test_metrics_processes.py checks the series that exist from startup.)"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from homeserver import app as app_module
from tests.conftest import MakeServer, RunningServer
from tests.edu_helpers import pair, send_edus
from tests.federation_peers import Peer, Peers, eventually
from tests.helpers import MatrixApi
from tests.metrics_scrape import sample, scrape
from tests.remote_rooms import BOB, joined, room_of

SYNC = "/_matrix/client/v3/sync"
LONG_POLLS = "moot_sync_long_polls_in_flight"


async def peer_page(peer: Peer, http: aiohttp.ClientSession) -> str:
    assert peer.hs is not None
    async with http.get(f"http://127.0.0.1:{peer.hs.ports['metrics']}/metrics") as resp:
        assert resp.status == 200
        return await resp.text()


async def test_a_woken_long_poll_is_in_flight_and_then_times_its_wake_up(
    api: MatrixApi, homeserver: RunningServer, http: aiohttp.ClientSession
) -> None:
    alice = await api.register("alice")
    room = await api.create_room(alice)
    since = (await api.sync(alice))["next_batch"]
    before = await scrape(homeserver, http)
    idle = sample(before, "moot_http_requests_in_flight", route=SYNC, method="GET")
    polls = sample(before, LONG_POLLS)  # the registry is per process
    woken = sample(before, "moot_sync_wakeup_delay_seconds_count")
    waits = sample(before, "moot_db_pool_acquire_duration_seconds_count")

    waiting = asyncio.ensure_future(api.sync(alice, since=since, timeout=30000))

    async def in_flight() -> bool:
        page = await scrape(homeserver, http)
        return (sample(page, "moot_http_requests_in_flight", route=SYNC, method="GET") > idle
                and sample(page, LONG_POLLS) == polls + 1)

    await eventually(in_flight, "the waiting /sync to show as in flight and long-polling")
    await api.send_message(alice, room, "wake up")
    assert room in (await waiting)["rooms"]["join"]
    after = await scrape(homeserver, http)
    assert sample(after, "moot_http_requests_in_flight", route=SYNC, method="GET") == idle
    assert sample(after, LONG_POLLS) == polls
    assert sample(after, "moot_sync_wakeup_delay_seconds_count") >= woken + 1
    assert sample(after, "moot_db_pool_acquire_duration_seconds_count") > waits


async def test_caches_count_hits_and_misses(
    api: MatrixApi, homeserver: RunningServer, http: aiohttp.ClientSession
) -> None:
    """A new access token is a miss of the token cache and then a hit; an event just sent is
    held by the event cache, so reading it is a hit."""
    def counts(page: str, cache: str) -> tuple[float, float]:
        return (sample(page, "moot_cache_requests_total", cache=cache, result="hit"),
                sample(page, "moot_cache_requests_total", cache=cache, result="miss"))

    alice = await api.register("alice")
    room = await api.create_room(alice)
    event_id = await api.send_message(alice, room, "held")
    fresh = await api.login(alice)
    before = await scrape(homeserver, http)
    await api.ok("GET", "account/whoami", token=fresh.token)
    middle = await scrape(homeserver, http)
    await api.ok("GET", "account/whoami", token=fresh.token)
    await api.ok("GET", f"rooms/{room}/event/{event_id}", token=fresh.token)
    after = await scrape(homeserver, http)

    # The first use of the new token misses, the two after it hit.
    assert counts(middle, "access_tokens")[1] >= counts(before, "access_tokens")[1] + 1
    assert counts(after, "access_tokens")[0] >= counts(middle, "access_tokens")[0] + 2
    assert counts(after, "events")[0] > counts(before, "events")[0]
    assert sample(after, "moot_cache_entries", cache="events") >= 1
    assert sample(after, "moot_cache_size_bytes", cache="events") > 0


async def test_a_rate_limited_request_is_counted_under_its_limit(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    homeserver = await make_homeserver(overrides={
        "rate_limits.enabled": True,
        "rate_limits.per_user": {"per_second": 0.001, "burst": 2},
    })
    api = MatrixApi(homeserver.url, http)
    alice = await api.register("alice")
    before = sample(await scrape(homeserver, http), "moot_ratelimit_refused_total",
                    kind="per_user")
    statuses = [
        (await api.request("PUT", f"sendToDevice/m.test/t{i}", json={"messages": {}},
                           token=alice.token))[0]
        for i in range(4)
    ]
    assert 429 in statuses
    after = sample(await scrape(homeserver, http), "moot_ratelimit_refused_total",
                   kind="per_user")
    assert after == before + statuses.count(429)


async def test_federation_traffic_moves_the_inbound_and_persisted_counters(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    """Bob's message on B reaches A in a transaction: A counts an accepted PDU, a processed
    transaction and a remote event; Alice's own message is a local one; an EDU B sends is
    counted by its type."""
    shared = await pair(peers, peer_http)
    a = shared.a
    before = await peer_page(a, peer_http)

    def message(page: str, origin: str) -> float:
        return sample(page, "moot_events_persisted_total", type="m.room.message", origin=origin)

    await shared.api_a.send_message(shared.alice, shared.room_id, "from here")
    await shared.api_b.send_message(shared.bob, shared.room_id, "from there")

    async def arrived() -> bool:
        page = await peer_page(a, peer_http)
        return sample(page, "moot_federation_inbound_pdus_total", outcome="accepted") > sample(
            before, "moot_federation_inbound_pdus_total", outcome="accepted"
        )

    await eventually(arrived, "A to accept Bob's message")
    await send_edus(shared.b, a, {"edu_type": "m.typing", "content": {
        "room_id": shared.room_id, "user_id": shared.bob.user_id, "typing": True,
    }}, {"edu_type": "org.example.unknown", "content": {}})
    after = await peer_page(a, peer_http)
    assert message(after, "local") >= message(before, "local") + 1
    assert message(after, "remote") >= message(before, "remote") + 1
    transactions = "moot_federation_inbound_transaction_duration_seconds_count"
    assert sample(after, transactions) >= sample(before, transactions) + 2
    for edu_type in ("m.typing", "other"):
        assert sample(after, "moot_federation_inbound_edus_total", type=edu_type) >= sample(
            before, "moot_federation_inbound_edus_total", type=edu_type
        ) + 1


async def test_forward_extremities_and_the_outbox_age_show_a_forked_unreachable_room(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two remote events on the same parents leave the room with two heads; our reply, queued
    for servers that cannot be reached, stays in the outbox and ages there."""
    monkeypatch.setattr(app_module, "GAUGE_REFRESH_S", 0.05)
    homeserver = await make_homeserver()
    api = MatrixApi(homeserver.url, http)
    builder, me, incoming = await joined(homeserver, api)
    room_id = room_of(builder)
    fork_point = list(builder.latest)
    for text in ("left", "right"):
        _, pdu = builder.make(BOB, "m.room.message", {"msgtype": "m.text", "body": text},
                              prev_events=fork_point)
        await incoming.receive(room_id, pdu)

    async def gauge_at_least(name: str, value: float) -> bool:
        return sample(await scrape(homeserver, http), name) >= value

    async def forked() -> bool:
        return await gauge_at_least("moot_room_forward_extremities_max", 2)

    await eventually(forked, "the forward extremities gauge to show the fork")
    await api.send_message(me, room_id, "to nobody reachable")

    async def aged() -> bool:
        return await gauge_at_least("moot_federation_outbox_oldest_age_seconds", 0.001)

    await eventually(aged, "the outbox's oldest item to show its age")


async def test_a_blocked_event_loop_raises_the_lag_histogram(
    homeserver: RunningServer, http: aiohttp.ClientSession
) -> None:
    """Callbacks of 0.15 s back to back for 1.8 s (each under the loop guard's threshold)
    delay the lag timer, which falls due among them, by at least two of them."""
    def late(page: str) -> float:
        return sample(page, "moot_event_loop_lag_seconds_count") - sample(
            page, "moot_event_loop_lag_seconds_bucket", le="0.25"
        )

    before = late(await scrape(homeserver, http))
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def block(remaining: int) -> None:
        time.sleep(0.15)
        if remaining:
            loop.call_soon(block, remaining - 1)
        else:
            done.set_result(None)

    loop.call_soon(block, 11)
    await done

    async def lag_seen() -> bool:
        return late(await scrape(homeserver, http)) > before

    await eventually(lag_seen, "the lag histogram to count a late wake-up")


