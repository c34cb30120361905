"""The push gateway client's connections, against a raw HTTP/1.1 server on loopback: requests
made together are pipelined on one connection and each gets its own answer; requests made
while others are unanswered wait for their answers and go out together; a connection the
gateway closes, or does not answer on, fails the requests waiting behind, and the next
request opens a new one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from homeserver.protocol.addresses import AddressPolicy
from homeserver.services import push_gateway_client
from homeserver.services.push_gateway_client import GatewayFailed, PushGatewayClient

PATH = "/_matrix/push/v1/notify"


@dataclass
class RawGateway:
    """Answers each request with the pushkey it named as `rejected`; with `close_after`, closes
    the connection after that many answers (saying so in the last)."""

    close_after: int | None = None
    # With `answer_after`, answers after that many are held until `release` (for ever if
    # never called).
    answer_after: int | None = None
    connections: int = 0
    chunks: list[int] = field(default_factory=list)  # requests in each read
    port: int = 0
    held: list[tuple[asyncio.Transport, bytes]] = field(default_factory=list)
    released: bool = False
    read: asyncio.Event = field(default_factory=asyncio.Event)  # set by every read

    def release(self) -> None:
        self.released = True
        for transport, answer in self.held:
            transport.write(answer)
        self.held.clear()

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
                    response = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (
                        len(answer), b"Connection: close\r\n" if closing else b"", answer,
                    )
                    if (gateway.answer_after is not None and not gateway.released
                            and self.answered >= gateway.answer_after):
                        gateway.held.append((self.transport, response))
                    else:
                        self.transport.write(response)
                    if closing:
                        self.transport.close()
                        break
                gateway.chunks.append(count)
                gateway.read.set()

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


async def test_requests_made_while_others_are_unanswered_wait_and_go_out_together(
    client: PushGatewayClient, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The hold: requests made one at a time while the first is unanswered are written
    together once its answer came, not one write each."""
    monkeypatch.setattr(push_gateway_client, "HOLD_S", 30.0)  # only the answer ends it here
    gateway = RawGateway(answer_after=1)  # holds the first answer until a second read
    async with await serve(gateway):
        first = asyncio.ensure_future(client.notify(gateway.url, {"pushkey": "k0"}))
        await asyncio.wait_for(gateway.read.wait(), 10)  # read; its answer is held
        later = []
        for i in range(1, 5):  # one loop turn or more apart from each other
            later.append(asyncio.ensure_future(client.notify(gateway.url, {"pushkey": f"k{i}"})))
            await asyncio.sleep(0.0002)
        gateway.release()
        answers = await asyncio.gather(first, *later)
        assert answers == [{"rejected": [f"k{i}"]} for i in range(5)]
        assert gateway.chunks == [1, 4]


async def test_a_gateway_that_does_not_answer_fails_the_requests_waiting_on_it(
    client: PushGatewayClient, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(push_gateway_client, "REQUEST_TIMEOUT_S", 0.3)
    gateway = RawGateway(answer_after=1)  # never released
    async with await serve(gateway):
        started = asyncio.get_running_loop().time()
        results = await asyncio.gather(
            *(client.notify(gateway.url, {"pushkey": f"k{i}"}) for i in range(3)),
            return_exceptions=True,
        )
        assert all(isinstance(r, GatewayFailed) for r in results), results
        assert 0.3 <= asyncio.get_running_loop().time() - started < 5
