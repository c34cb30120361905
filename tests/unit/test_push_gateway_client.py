"""The push gateway client's connections, against a raw HTTP/1.1 server on loopback: requests
made together are pipelined on one connection and each gets its own answer; a connection the
gateway closes fails the requests waiting behind, and the next request opens a new one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from homeserver.protocol.addresses import AddressPolicy
from homeserver.services.push_gateway_client import GatewayFailed, PushGatewayClient

PATH = "/_matrix/push/v1/notify"


@dataclass
class RawGateway:
    """Answers each request with the pushkey it named as `rejected`; with `close_after`, closes
    the connection after that many answers (saying so in the last)."""

    close_after: int | None = None
    connections: int = 0
    chunks: list[int] = field(default_factory=list)  # requests in each read
    port: int = 0

    def protocol(self) -> asyncio.Protocol:
        gateway = self
        gateway.connections += 1

        class Conn(asyncio.Protocol):
            data = b""
            answered = 0

            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                assert isinstance(transport, asyncio.Transport)
                self.transport = transport

            def data_received(self, data: bytes) -> None:
                self.data += data
                count = 0
                while (end := self.data.find(b"\r\n\r\n")) >= 0:
                    head = self.data[:end].decode().lower()
                    length = int(head.split("content-length: ")[1].split("\r\n")[0])
                    if len(self.data) < end + 4 + length:
                        break
                    body = json.loads(self.data[end + 4:end + 4 + length])
                    self.data = self.data[end + 4 + length:]
                    count += 1
                    self.answered += 1
                    closing = gateway.close_after == self.answered
                    answer = json.dumps({"rejected": [body["pushkey"]]}).encode()
                    self.transport.write(
                        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (
                            len(answer), b"Connection: close\r\n" if closing else b"", answer,
                        )
                    )
                    if closing:
                        self.transport.close()
                        break
                gateway.chunks.append(count)

        return Conn()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"


@pytest.fixture
async def client() -> AsyncIterator[PushGatewayClient]:
    client = PushGatewayClient(AddressPolicy(allow_private=True))
    yield client
    await client.close()


async def serve(gateway: RawGateway) -> asyncio.Server:
    server = await asyncio.get_running_loop().create_server(gateway.protocol, "127.0.0.1", 0)
    gateway.port = server.sockets[0].getsockname()[1]
    return server


async def test_requests_made_together_share_one_connection_and_one_write(
    client: PushGatewayClient,
) -> None:
    gateway = RawGateway()
    async with await serve(gateway):
        answers = await asyncio.gather(
            *(client.notify(gateway.url, {"pushkey": f"k{i}"}) for i in range(8))
        )
        assert answers == [{"rejected": [f"k{i}"]} for i in range(8)]
        assert gateway.connections == 1
        assert gateway.chunks == [8]
        assert await client.notify(gateway.url, {"pushkey": "later"}) == {"rejected": ["later"]}
        assert gateway.connections == 1  # kept alive


async def test_a_closed_connection_fails_the_requests_behind_and_is_replaced(
    client: PushGatewayClient,
) -> None:
    gateway = RawGateway(close_after=2)
    async with await serve(gateway):
        results = await asyncio.gather(
            *(client.notify(gateway.url, {"pushkey": f"k{i}"}) for i in range(4)),
            return_exceptions=True,
        )
        assert results[:2] == [{"rejected": ["k0"]}, {"rejected": ["k1"]}]
        assert all(isinstance(r, GatewayFailed) for r in results[2:]), results
        assert await client.notify(gateway.url, {"pushkey": "again"}) == {"rejected": ["again"]}
        assert gateway.connections == 2
