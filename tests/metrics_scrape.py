"""Reading a server's Prometheus endpoint the way a scraper does, and picking one sample."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import aiohttp

if TYPE_CHECKING:
    from tests.conftest import RunningServer


async def scrape(homeserver: RunningServer, http: aiohttp.ClientSession) -> str:
    url = f"http://127.0.0.1:{homeserver.hs.ports['metrics']}/metrics"
    async with http.get(url) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/plain"
        return await resp.text()


def sample(text: str, metric: str, **labels: str) -> float:
    """The value of the first sample of `metric` carrying at least `labels`."""
    # The test process holds every server's series, so the page is long: only lines that start
    # with the name are parsed (a full parse per sample held the event loop past 100 ms).
    for line in text.splitlines():
        if not line.startswith(metric):
            continue
        match = re.match(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$", line)
        if match is None or match.group(1) != metric:
            continue
        have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            return float(match.group(3))
    raise AssertionError(f"no sample {metric}{labels}")


