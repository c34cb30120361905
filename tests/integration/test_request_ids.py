"""Which records carry a request's ID (`logging.format: json`, homeserver/logs.py): those logged
while the request is handled, and not those of the background work it happens to start and
that goes on serving other requests afterwards (a destination's federation sender, a room's
writer): tagged with the first request's ID, hours of their records would be gathered with it."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import aiohttp
import pytest

from homeserver.logs import REQUEST_ID
from tests.conftest import MakeServer
from tests.federation_peers import eventually
from tests.helpers import MatrixApi

# A server named by a loopback address, which the test server's address policy refuses at once.
REMOTE_USER = "@zoe:127.0.0.1:12"


class RequestIds(logging.Handler):
    """Each record's message with the request ID current where it was logged."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str | None]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append((record.getMessage(), REQUEST_ID.get()))


@pytest.fixture
def sender_records() -> Iterator[RequestIds]:
    handler = RequestIds()
    logger = logging.getLogger("federation.sender")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def test_the_federation_sender_a_request_starts_logs_under_no_request(
    make_homeserver: MakeServer, http: aiohttp.ClientSession, sender_records: RequestIds
) -> None:
    server = await make_homeserver()
    api = MatrixApi(server.url, http)
    alice = await api.register("alice")
    await api.ok("PUT", "sendToDevice/m.test/t1", token=alice.token,
                 json={"messages": {REMOTE_USER: {"DEVICE": {"x": 1}}}})

    def failures() -> list[tuple[str, str | None]]:
        return [(m, r) for m, r in sender_records.seen if "127.0.0.1:12" in m]

    async def failed() -> bool:
        return bool(failures())

    await eventually(failed, "the sender to log a failed transaction")
    assert [request_id for _, request_id in failures()] == [None] * len(failures())
