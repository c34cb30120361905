"""The shipped monitoring files against the real tools: `deploy/prometheus.yml` in a real
Prometheus scraping a live main process and /sync worker under a small load, every query of the
Grafana dashboard `deploy/grafana/moot.json` evaluated there, and the alert rules
`deploy/prometheus/alerts.yml` checked, unit-tested and evaluated by Prometheus itself.

Prometheus and promtool come from Debian's `prometheus` package (`make tools`); without them
these tests skip and say why.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import throwaway_database
from tests.prometheus_stack import (
    ALERT_TESTS,
    ALERTS,
    PROMETHEUS,
    PROMTOOL,
    SCRAPE_CONFIG,
    Prometheus,
    alert_queries,
    dashboard,
    dashboard_queries,
    grafana_to_promql,
    metric_names,
    panels,
    run_promtool,
    scrape_config_for,
)
from tests.worker_cluster import WORKER, Cluster, until, worker_cluster

NO_PROMTOOL = "promtool is not installed (Debian package prometheus; `make tools`)"
NO_PROMETHEUS = "prometheus is not installed (Debian package prometheus; `make tools`)"
SCRAPED_DEADLINE_S = 60.0
JOBS = {"moot", "moot-worker"}
# The label the shipped config gives both processes, and the value a test picks for the
# dashboard's other variables (Grafana's "All").
SERVER_NAME = "example.org"
VARIABLES = {"server_name": SERVER_NAME, "instance": ".*"}
# The rows the dashboard promises an operator, in order.
ROWS = [
    "Traffic and latency by route", "Sync long-polls", "Event persistence", "Send batching",
    "Federation", "Push and application services", "Database", "Caches", "Process", "Workers",
]
# Series from other exporters: node exporter's, and Prometheus's own `up`.
FOREIGN_METRIC = re.compile(r"^(node_\w+|up)$")


def need(tool: str | None, reason: str) -> None:
    if tool is None:
        print(f"skipped: {reason}")
        pytest.skip(reason)


# ---- the files alone -------------------------------------------------------------------------

def test_promtool_accepts_the_scrape_config() -> None:
    need(PROMTOOL, NO_PROMTOOL)
    checked = run_promtool("check", "config", str(SCRAPE_CONFIG))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # The config loads the shipped rules, so that Prometheus alerts once it is installed.
    assert "1 rule files found" in checked.stdout + checked.stderr


def test_promtool_checks_the_alert_rules_and_their_unit_tests_pass() -> None:
    need(PROMTOOL, NO_PROMTOOL)
    for args in (("check", "rules", str(ALERTS)), ("test", "rules", str(ALERT_TESTS))):
        ran = run_promtool(*args)
        assert ran.returncode == 0, f"promtool {' '.join(args)}:\n{ran.stdout}{ran.stderr}"


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    cases = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in cases:
        for check in case["alert_rule_test"]:
            (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {name for name, _ in alert_queries()}
    assert names - fired == set(), "alerts no test sees firing"
    assert names - quiet == set(), "alerts no test sees quiet"


def test_the_dashboard_is_importable_with_a_prometheus_datasource_variable() -> None:
    board = dashboard()
    assert board["schemaVersion"] >= 36 and board["uid"] and board["title"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    chosen = {"type": "prometheus", "uid": "${datasource}"}
    for name, variable in variables.items():
        if variable["type"] == "query":
            assert variable["datasource"] == chosen, name
    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert rows[-len(ROWS):] == ROWS
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels(board):
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        assert panel["datasource"] == chosen, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == chosen, panel["title"]
            # Fixed windows break at other scrape intervals: Grafana picks the window.
            for window in re.findall(r"\[([^\]]*)\]", target["expr"]):
                assert window == "$__rate_interval", f"{panel['title']}: [{window}]"


# ---- a live server scraped by Prometheus -----------------------------------------------------

@dataclass
class Monitored:
    prometheus: Prometheus
    session: aiohttp.ClientSession
    main_target: str
    worker_target: str
    live_metrics: set[str]  # every sample name the main process and the worker declare


async def small_load(cluster: Cluster, federation_port: int) -> None:
    """Registrations, a room, sends waking a /sync long-poll held by the worker, /sync on the
    main process, and a request on the federation listener."""
    alice, bob, room_id = await cluster.room_of_two()
    # set_presence=offline: bob coming online would itself answer the long-poll.
    since = (await cluster.on_worker.sync(bob, set_presence="offline"))["next_batch"]
    poll = asyncio.create_task(
        cluster.on_worker.sync(bob, since=since, timeout=30000, set_presence="offline")
    )
    await cluster.wait_until_held(poll)
    for n in range(5):
        await cluster.on_main.send_message(alice, room_id, f"message {n}")
    assert room_id in (await poll)["rooms"]["join"]
    await cluster.on_main.sync(alice)
    url = f"https://127.0.0.1:{federation_port}/_matrix/federation/v1/version"
    async with cluster.session.get(url, ssl=False) as resp:
        assert resp.status == 200


# The sample names a declared family has before its first sample (a labelled family is declared
# by its HELP and TYPE lines from the start, its series appear with their first label values).
SAMPLE_SUFFIXES = {
    "counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",),
    "summary": ("", "_count", "_sum"), "info": ("_info",),
}


async def exported_names(session: aiohttp.ClientSession, target: str) -> set[str]:
    """Every sample name the target's /metrics declares, whether it has samples yet or not."""
    async with session.get(f"http://{target}/metrics") as resp:
        text = await resp.text()
    return {
        name
        for family in text_string_to_metric_families(text)
        for name in (*(family.name + suffix for suffix in SAMPLE_SUFFIXES.get(family.type, ())),
                     *(s.name for s in family.samples))
    }


async def scraped_twice(prometheus: Prometheus, session: aiohttp.ClientSession) -> bool:
    """Both Moot jobs up, each with two samples or more."""
    jobs = "|".join(sorted(JOBS))
    series = await prometheus.query(
        session, f'count_over_time(up{{job=~"{jobs}"}}[5m]) >= 2 and on (instance) '
                 f'up{{job=~"{jobs}"}} == 1',
    )
    return {s["metric"]["job"] for s in series} == JOBS


@pytest.fixture(scope="module")
async def monitored(
    postgres_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Monitored]:
    need(PROMETHEUS, NO_PROMETHEUS)
    tmp: Path = tmp_path_factory.mktemp("prometheus")
    async with throwaway_database(postgres_dsn) as url, worker_cluster(url, tmp) as cluster:
        listeners = yaml.safe_load(cluster.main.config_path.read_text())["listeners"]
        await small_load(cluster, listeners["federation"]["port"])
        main_target = f"127.0.0.1:{listeners['metrics']['port']}"
        worker_target = f"127.0.0.1:{cluster.worker_metrics_port}"
        prometheus = Prometheus(tmp / "prometheus")
        try:
            await prometheus.start(scrape_config_for(main_target, worker_target))
            await until(lambda: scraped_twice(prometheus, cluster.session),
                        "Prometheus to scrape both processes twice", SCRAPED_DEADLINE_S)
            live = (await exported_names(cluster.session, main_target)
                    | await exported_names(cluster.session, worker_target))
            yield Monitored(prometheus, cluster.session, main_target, worker_target, live)
        finally:
            await prometheus.stop()


async def test_prometheus_scrapes_the_main_process_and_the_worker(monitored: Monitored) -> None:
    targets = await monitored.prometheus.api(monitored.session, "targets", state="active")
    by_address = {t["labels"]["instance"]: t for t in targets["activeTargets"]}
    main, worker = by_address[monitored.main_target], by_address[monitored.worker_target]
    assert (main["labels"]["job"], main["health"]) == ("moot", "up")
    assert (worker["labels"]["job"], worker["health"]) == ("moot-worker", "up")
    assert main["labels"]["server_name"] == worker["labels"]["server_name"] == SERVER_NAME
    assert worker["labels"].get("worker") == WORKER


async def test_every_dashboard_query_returns_a_series(monitored: Monitored) -> None:
    empty = []
    for title, expr in dashboard_queries(dashboard()):
        promql = grafana_to_promql(expr, VARIABLES)
        if not await monitored.prometheus.query(monitored.session, promql):
            empty.append(f"{title}: {promql}")
    assert empty == [], "panels whose query returns no series:\n" + "\n".join(empty)


async def test_the_dashboard_variables_find_values(monitored: Monitored) -> None:
    """Each `label_values(selector, label)` variable offers at least one value."""
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["definition"])
        assert match, variable["definition"]
        selector = grafana_to_promql(match[1], VARIABLES)
        series = await monitored.prometheus.query(
            monitored.session, f"count by ({match[2]}) ({selector})"
        )
        assert [s["metric"].get(match[2]) for s in series if s["metric"].get(match[2])], \
            f"variable {variable['name']} would offer nothing"


async def test_every_metric_of_the_dashboard_and_alerts_is_exported(monitored: Monitored) -> None:
    used = {
        (where, name)
        for where, expr in [*dashboard_queries(dashboard()), *alert_queries()]
        for name in metric_names(expr)
        if not FOREIGN_METRIC.match(name)
    }
    assert used, "no metric names found: the extraction is broken"
    missing = sorted(f"{where}: {name}" for where, name in used
                     if name not in monitored.live_metrics)
    assert missing == [], "metrics that /metrics does not export:\n" + "\n".join(missing)


async def test_prometheus_evaluates_every_alert_rule(monitored: Monitored) -> None:
    async def all_evaluated() -> bool:
        data = await monitored.prometheus.api(monitored.session, "rules", type="alert")
        rules = [r for group in data["groups"] for r in group["rules"]]
        broken = [f"{r['name']}: {r.get('lastError')}" for r in rules if r["health"] == "err"]
        assert broken == [], broken
        return bool(rules) and all(r["health"] == "ok" for r in rules)

    await until(all_evaluated, "every alert rule to be evaluated", SCRAPED_DEADLINE_S)
    data = await monitored.prometheus.api(monitored.session, "rules", type="alert")
    loaded = {r["name"] for group in data["groups"] for r in group["rules"]}
    assert loaded == {name for name, _ in alert_queries()}
