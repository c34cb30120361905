"""A real Prometheus (Debian's package) for the monitoring tests, and readers of the shipped
dashboard and alert rules: their PromQL expressions and the metric names those use.

Prometheus runs with the shipped `deploy/prometheus.yml`, changed only where a test must: its
targets' addresses and its intervals (so two samples take seconds, not half a minute).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.federation_helpers import free_port
from tests.peer_process import terminate, wait_until_answers

CHECKOUT = Path(__file__).resolve().parents[1]
SCRAPE_CONFIG = CHECKOUT / "deploy" / "prometheus.yml"
ALERTS = CHECKOUT / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = CHECKOUT / "deploy" / "prometheus" / "alerts.test.yml"
DASHBOARD = CHECKOUT / "deploy" / "grafana" / "moot.json"
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")

# The shipped addresses and interval, and the window a test gives `$__rate_interval`: several
# scrapes at the test's interval, as Grafana makes it at least four scrape intervals.
SHIPPED_MAIN_TARGET = "127.0.0.1:9108"
SHIPPED_WORKER_TARGET = "127.0.0.1:9118"
SHIPPED_INTERVAL = "15s"
TEST_INTERVAL = "1s"
TEST_RATE_INTERVAL = "30s"

START_DEADLINE_S = 30.0


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60,
                          check=False)


def scrape_config_for(main_target: str, worker_target: str) -> str:
    """The shipped scrape config pointed at a test's processes and scraping every second."""
    text = SCRAPE_CONFIG.read_text()
    for shipped, replacement in ((SHIPPED_MAIN_TARGET, main_target),
                                 (SHIPPED_WORKER_TARGET, worker_target),
                                 (f"interval: {SHIPPED_INTERVAL}", f"interval: {TEST_INTERVAL}")):
        assert shipped in text, f"deploy/prometheus.yml no longer holds {shipped!r} to replace"
        text = text.replace(shipped, replacement)
    return text


def grafana_to_promql(expr: str, variables: dict[str, str]) -> str:
    """What Grafana sends for `expr`: its template variables replaced by their values."""
    expr = expr.replace("$__rate_interval", TEST_RATE_INTERVAL)
    for name, value in variables.items():
        expr = expr.replace("${" + name + "}", value).replace("$" + name, value)
    assert "$" not in expr, f"a variable the test does not know is left in {expr!r}"
    return expr


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those nested in collapsed rows included; rows themselves are not panels."""
    for panel in board["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def dashboard_queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expression) of every query of every panel."""
    return [(p["title"], t["expr"]) for p in panels(board) for t in p["targets"]]


def alert_queries() -> list[tuple[str, str]]:
    """(alert name, expression) of every rule in the shipped alert rules."""
    rules = yaml.safe_load(ALERTS.read_text())
    return [(r["alert"], r["expr"]) for group in rules["groups"] for r in group["rules"]]


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME = re.compile(r"(?<![\w.])([A-Za-z_:][\w:]*)(?![\w:]|\s*\()")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan"})


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, labels and keywords left out)."""
    bare = _STRING.sub('""', expr)
    for pattern in (_MATCHERS, _RANGE, _GROUPING):
        bare = pattern.sub(" ", bare)
    return {n for n in _NAME.findall(bare) if n.lower() not in _KEYWORDS}


@dataclass
class Prometheus:
    """A Prometheus server on a free loopback port with its database in a scratch directory."""

    workdir: Path
    port: int = 0
    proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, config_text: str) -> None:
        """Write the config (beside a copy of the alert rules, where its `rule_files` looks) and
        start Prometheus; returns once it answers ready."""
        assert PROMETHEUS is not None
        (self.workdir / "prometheus").mkdir(parents=True, exist_ok=True)
        shutil.copy(ALERTS, self.workdir / "prometheus" / "alerts.yml")
        config = self.workdir / "prometheus.yml"
        config.write_text(config_text)
        self.port = free_port()
        with (self.workdir / "prometheus.log").open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                PROMETHEUS, f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn",
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
            )
        async with aiohttp.ClientSession() as session:
            await wait_until_answers(
                self.proc, session, self.url + "/-/ready", "prometheus", START_DEADLINE_S,
                self.log_tail,
            )

    def log_tail(self) -> str:
        return (self.workdir / "prometheus.log").read_text(errors="replace")[-3000:]

    async def api(self, session: aiohttp.ClientSession, path: str, **params: str) -> Any:
        async with session.get(f"{self.url}/api/v1/{path}", params=params) as resp:
            body = await resp.json()
        assert body["status"] == "success", f"/api/v1/{path} {params}: {body}"
        return body["data"]

    async def query(self, session: aiohttp.ClientSession, promql: str) -> list[dict[str, Any]]:
        """The series an instant query returns (a scalar counts as none)."""
        data = await self.api(session, "query", query=promql)
        result: list[dict[str, Any]] = data["result"] if data["resultType"] == "vector" else []
        return result

    async def stop(self) -> None:
        await terminate(self.proc)
