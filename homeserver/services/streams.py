"""The positions of every stream /sync reads, and the token that carries them to clients.

A sync token is the tuple of positions, one per stream. New streams are appended at the end;
a token from an older server version simply lacks them and parses with zeros.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import asyncpg

from homeserver.services.clock import Clock
from storage.streams import FollowerStreamIdGenerator, StreamIdGenerator

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


def prefixed_position(token: str, prefix: str) -> int | None:
    """The position of a `<prefix><digits>` page token (relations, threads), None when the
    token is not of that form; ValueError past the largest position (a client's digits must
    not reach the database's integers)."""
    digits = token[len(prefix):]
    if not token.startswith(prefix) or not digits.isascii() or not digits.isdigit():
        return None
    if len(digits) > 19 or int(digits) > MAX_POSITION:
        raise ValueError("stream position out of range")
    return int(digits)


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

    def advance_to(self, token: StreamToken) -> None:
        """Followers only: move each stream up to the writer's position in `token`."""
        for f in fields(token):
            generator = getattr(self, f.name)
            if not isinstance(generator, FollowerStreamIdGenerator):
                raise TypeError(f"the {f.name} stream is written here, not followed")
            generator.advance_to(getattr(token, f.name))


async def load_streams(
    conn: asyncpg.Connection, clock: Clock, *, follower: bool = False
) -> Streams:
    """Every stream at its highest stored position: the writer's at start-up, or (`follower`)
    generators that never allocate, for a process that reads what the writer wrote."""
    cls = FollowerStreamIdGenerator if follower else StreamIdGenerator
    return Streams(
        events=await cls.load(conn, "events", "stream_ordering"),
        account_data=await cls.load(conn, "account_data", "stream_id"),
        receipts=await cls.load(conn, "receipts", "stream_id"),
        # Typing lives in the writer's memory; starting from the clock keeps old tokens
        # behind it. A follower learns the writer's position from replication.
        typing=cls(0 if follower else clock.now_ms()),
        to_device=await cls.load_watermark(conn, "to_device"),
        device_lists=await cls.load(conn, "device_list_changes", "stream_id"),
        presence=await cls.load(conn, "presence", "stream_id"),
    )


def follower_streams() -> Streams:
    """Followers at position 0, for a process that learns the positions before serving."""
    gen = FollowerStreamIdGenerator
    return Streams(gen(0), gen(0), gen(0), gen(0), gen(0), gen(0), gen(0))
