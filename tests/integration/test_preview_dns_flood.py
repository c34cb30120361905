"""While the address lookups of URLs users asked previews of hang, media is still served.

A lookup outlives its timeout (getaddrinfo cannot be interrupted), so a user who keeps asking
previews of names whose DNS never answers leaves a thread behind with each one. Run on
asyncio's default executor, they filled it, and every upload, download and thumbnail (their
file I/O runs there) queued behind them; in the resolver's own threads they wait only for each
other. The stand-in is `socket.getaddrinfo` hanging for names under `hang.test`
(tests/hanging_dns.py), and a lookup timeout short enough that each
preview answers 502 at once while its lookup still hangs.

No wall-clock bound: the lookups hang until the test ends, so an upload answered at all was
answered while they hang.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import aiohttp
import pytest

from homeserver.services import url_fetcher
from tests.conftest import MakeServer
from tests.hanging_dns import (
    BLOCKED_THREADS,
    HANGING_DOMAIN,
    LOGIN_DEADLINE_S,
    HangingResolver,
    hanging_dns,
)
from tests.helpers import MatrixApi

pytestmark = pytest.mark.usefixtures("no_server_errors")

__all__ = ["hanging_dns"]  # the fixture, used by name

# More abandoned lookups than asyncio's default executor has threads on any machine.
PREVIEWS = 40


@pytest.fixture
def quick_lookup_timeout(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(url_fetcher, "DNS_TIMEOUT_S", 0.01)
    yield


@pytest.mark.usefixtures("quick_lookup_timeout")
async def test_uploads_answer_while_preview_lookups_hang(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, hanging_dns: HangingResolver
) -> None:
    server = await make_homeserver(
        {"media.url_previews.enabled": True, "rate_limits.enabled": False}
    )
    api = MatrixApi(server.url, http)
    user = await api.register("previewer")
    for i in range(PREVIEWS):
        status, body = await api.request(
            "GET", "/_matrix/client/v1/media/preview_url", token=user.token,
            params={"url": f"http://p{i}{HANGING_DOMAIN}/"},
        )
        assert (status, body["errcode"]) == (502, "M_UNKNOWN"), body
    assert hanging_dns.blocked >= BLOCKED_THREADS

    async with asyncio.timeout(LOGIN_DEADLINE_S):
        status, upload = await api.request(
            "POST", "/_matrix/media/v3/upload", raw=b"still served", token=user.token,
            headers={"Content-Type": "text/plain"},
        )
    assert status == 200, upload
