"""HTTP by hand over a raw connection, for tests of what a well-behaved client never does:
stop half-way through a header line, trickle a body, declare more than it sends.

Every wait has a deadline, so a server that never answers fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass

DEADLINE_S = 10.0


def insecure_tls() -> ssl.SSLContext:
    """A client context that trusts the test servers' self-signed certificates."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@dataclass
class RawConnection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    @classmethod
    async def open(cls, port: int, *, tls: bool = False) -> RawConnection:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=insecure_tls() if tls else None
        )
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_until_closed(self, deadline_s: float = DEADLINE_S) -> bytes:
        """Everything the server sends until it closes; TimeoutError after ``deadline_s``."""
        chunks = []
        async with asyncio.timeout(deadline_s):
            while chunk := await self._read_some():
                chunks.append(chunk)
        return b"".join(chunks)

    async def read_response_head(self, deadline_s: float = DEADLINE_S) -> bytes:
        """The status line and headers of the next response."""
        async with asyncio.timeout(deadline_s):
            return await self.reader.readuntil(b"\r\n\r\n")

    async def _read_some(self) -> bytes:
        try:
            return await self.reader.read(65536)
        except (ConnectionResetError, ssl.SSLError):
            return b""  # a reset (or a TLS close without close_notify) is closing too

    def close(self) -> None:
        self.writer.close()


def request_head(method: str, path: str, headers: dict[str, str] | None = None) -> bytes:
    """A request line and headers, ready to send (a Host header included)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()
