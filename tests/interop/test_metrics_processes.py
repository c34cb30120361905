"""The /metrics pages of a fresh main process and a fresh /sync worker: every series whose
labels are known in advance is there from startup (a dashboard's query finds it before the
first event), the worker measures its own event-loop lag, and `promtool check metrics`
(Prometheus's own linter) finds nothing to say about either page after some load."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from homeserver.config import load_config
from tests.metrics_scrape import sample
from tests.worker_cluster import Cluster, until, worker_cluster

SYNC = "/_matrix/client/v3/sync"
CACHES = (
    "events", "recent_events", "current_state", "access_tokens", "memberships", "txn_ids",
    "unread_counts", "filters", "one_time_key_counts", "ignored_users",
    "sliding_sync_capped_rooms", "sliding_sync_departures", "sliding_sync_room_types",
    "sliding_sync_account", "push_rules",
)
LIMITS = ("per_user", "per_ip", "login_failures", "login_failures_per_ip", "registration",
          "user_writes", "reports")
PDU_OUTCOMES = ("accepted", "soft_failed", "rejected", "duplicate", "refused", "ignored")
EDU_TYPES = ("m.typing", "m.receipt", "m.presence", "m.device_list_update",
             "m.signing_key_update", "m.direct_to_device", "other")
HISTOGRAMS = (
    "moot_federation_inbound_transaction_duration_seconds", "moot_event_loop_lag_seconds",
    "moot_sync_wakeup_delay_seconds", "moot_db_pool_acquire_duration_seconds",
)


@pytest.fixture
async def cluster(database_url: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    async with worker_cluster(database_url, tmp_path) as running:
        yield running


async def pages(cluster: Cluster) -> dict[str, str]:
    """Each process's /metrics page, by process."""
    main_port = load_config(cluster.main.config_path).listeners.metrics.port
    out = {}
    for name, port in (("main", main_port), ("worker", cluster.worker_metrics_port)):
        async with cluster.session.get(f"http://127.0.0.1:{port}/metrics") as resp:
            assert resp.status == 200
            out[name] = await resp.text()
    return out


async def test_series_known_in_advance_exist_from_startup_in_every_process(
    cluster: Cluster,
) -> None:
    for process, page in (await pages(cluster)).items():
        try:
            assert sample(page, "moot_build_info") == 1
            assert sample(page, "moot_http_requests_in_flight", route=SYNC, method="GET") == 0
            for cache in CACHES:
                for result in ("hit", "miss"):
                    sample(page, "moot_cache_requests_total", cache=cache, result=result)
                sample(page, "moot_cache_entries", cache=cache)
            for cache in ("events", "recent_events", "current_state"):
                sample(page, "moot_cache_size_bytes", cache=cache)
            for kind in LIMITS:
                assert sample(page, "moot_ratelimit_refused_total", kind=kind) == 0
            for outcome in PDU_OUTCOMES:
                assert sample(page, "moot_federation_inbound_pdus_total", outcome=outcome) == 0
            for edu_type in EDU_TYPES:
                assert sample(page, "moot_federation_inbound_edus_total", type=edu_type) == 0
            for origin in ("local", "remote"):
                sample(page, "moot_events_persisted_total", type="m.room.message", origin=origin)
            for histogram in HISTOGRAMS:
                sample(page, histogram + "_count")
            sample(page, "moot_room_forward_extremities_max")
            sample(page, "moot_federation_outbox_oldest_age_seconds")
        except AssertionError as e:
            raise AssertionError(f"{process}: {e}") from None


async def test_the_worker_measures_its_event_loop_lag(cluster: Cluster) -> None:
    async def sampled() -> bool:
        return sample((await pages(cluster))["worker"], "moot_event_loop_lag_seconds_count") > 0

    await until(sampled, "the worker to sample its event-loop lag")


async def test_promtool_finds_nothing_to_lint_on_either_process_after_load(
    cluster: Cluster,
) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        print("promtool is not installed (make tools installs it): nothing to lint with")
        pytest.skip("promtool is not installed")
    alice, bob, room_id = await cluster.room_of_two()
    since = (await cluster.on_worker.sync(bob))["next_batch"]
    for i in range(3):
        await cluster.on_main.send_message(alice, room_id, f"message {i}")
    await cluster.on_worker.sync(bob, since=since, timeout=5000)
    status, _ = await cluster.on_main.request("GET", "joined_rooms")
    assert status == 401
    for process, page in (await pages(cluster)).items():
        lint = await asyncio.create_subprocess_exec(
            promtool, "check", "metrics",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await lint.communicate(page.encode())
        assert (process, lint.returncode, output.decode()) == (process, 0, "")
