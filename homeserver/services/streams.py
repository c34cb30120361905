"""The positions of every stream /sync reads, and the token that carries them to clients.

A sync token is the tuple of positions, one per stream. New streams are appended at the end;
a token from an older server version simply lacks them and parses with zeros.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from storage.streams import StreamIdGenerator

MAX_POSITION = 2**63 - 1  # stream positions are PostgreSQL bigints


@dataclass(frozen=True, slots=True)
class StreamToken:
    events: int = 0
    account_data: int = 0
    receipts: int = 0
    typing: int = 0
    to_device: int = 0
    device_lists: int = 0
    presence: int = 0

    def encode(self) -> str:
        return "s" + "_".join(str(getattr(self, f.name)) for f in fields(self))

    @classmethod
    def parse(cls, token: str) -> StreamToken:
        """Raises ValueError for anything that is not a token this server issued."""
        if not token.startswith("s"):
            raise ValueError("not a stream token")
        parts = token[1:].split("_")
        if not 1 <= len(parts) <= len(fields(cls)):
            raise ValueError("wrong number of stream positions")
        values = [int(p) for p in parts]
        if any(not 0 <= v <= MAX_POSITION for v in values):
            raise ValueError("stream position out of range")
        return cls(*values)


@dataclass(slots=True)
class Streams:
    """The writers' position generators; `current()` is what a reader may read up to."""

    events: StreamIdGenerator
    account_data: StreamIdGenerator
    receipts: StreamIdGenerator
    typing: StreamIdGenerator
    to_device: StreamIdGenerator
    device_lists: StreamIdGenerator
    presence: StreamIdGenerator

    def current(self) -> StreamToken:
        return StreamToken(
            events=self.events.current,
            account_data=self.account_data.current,
            receipts=self.receipts.current,
            typing=self.typing.current,
            to_device=self.to_device.current,
            device_lists=self.device_lists.current,
            presence=self.presence.current,
        )
