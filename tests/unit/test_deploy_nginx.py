"""The shipped nginx files agree with Moot's defaults where a live test would take too long to
show it: the body limit lets the largest upload through (the live test uploads 20 MB, not
50 MiB) and the /sync location outwaits the longest long-poll (60 s). They are server blocks
only, for nginx 1.22 (no `http2 on;`, which it does not know)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from homeserver.config import LimitsConfig, MediaConfig

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
FILES = ("nginx.conf", "nginx-workers.conf")
SYNC_LOCATION = re.compile(r"location ~ \^/_matrix/client/\(\(r0\|v3\)/sync[^{]*\{([^}]*)\}")


@pytest.mark.parametrize("name", FILES)
def test_the_body_limit_lets_the_largest_upload_through(name: str) -> None:
    limits = re.findall(r"client_max_body_size (\d+)m;", (DEPLOY / name).read_text())
    assert limits
    assert min(int(mib) for mib in limits) * 1024 * 1024 >= MediaConfig().max_upload_bytes


@pytest.mark.parametrize("name", FILES)
def test_sync_outwaits_the_longest_long_poll(name: str) -> None:
    (location,) = SYNC_LOCATION.findall((DEPLOY / name).read_text())
    (timeout,) = re.findall(r"proxy_read_timeout (\d+)s;", location)
    assert int(timeout) * 1000 > LimitsConfig().sync_timeout_max_ms


@pytest.mark.parametrize("name", FILES)
def test_server_blocks_only_for_nginx_1_22(name: str) -> None:
    text = (DEPLOY / name).read_text()
    assert not re.search(r"^\s*(http|events)\s*\{", text, re.MULTILINE)
    assert not re.search(r"^\s*http2\s+on;", text, re.MULTILINE)
