"""Clients that connect from a chosen loopback address (all of 127/8 is loopback on Linux), so
that one test can be several client addresses, or a trusted reverse proxy and an untrusted
peer, to the server it drives."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import aiohttp

from tests.helpers import MatrixApi

if TYPE_CHECKING:
    from tests.conftest import RunningServer


@asynccontextmanager
async def client_at(server: RunningServer, address: str) -> AsyncIterator[MatrixApi]:
    """A client whose requests come from `address`."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0), limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        yield MatrixApi(server.url, session)
