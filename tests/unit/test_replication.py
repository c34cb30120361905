"""A worker's side of replication, fed messages by hand (no database, no sockets)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

from homeserver.services.ephemeral import TypingService
from homeserver.services.notifier import Notifier
from homeserver.services.outbound_edus import NoEdus
from homeserver.services.replication import Replicated, WorkerReplication
from homeserver.services.requester import Requester
from homeserver.services.rooms.cache import RoomCache
from homeserver.services.rooms.recent import RecentEvents
from homeserver.services.streams import StreamToken, follower_streams
from homeserver.services.token_cache import TokenCache
from tests.fake_clock import FakeClock


def worker() -> WorkerReplication:
    streams = follower_streams()
    notifier = Notifier()
    typing = TypingService(cast(Any, None), cast(Any, None), streams.typing, notifier, NoEdus())
    state = Replicated(
        streams, notifier, engine=cast(Any, None), e2e_keys=cast(Any, None),
        tokens=TokenCache(FakeClock()), typing=typing,
        presence=cast(Any, SimpleNamespace(forward=None)),
    )
    return WorkerReplication("postgresql://unused", state, cast(Any, None), FakeClock())


async def test_a_wake_up_moves_the_positions_then_wakes_its_users() -> None:
    replication = worker()
    notifier = replication.state.notifier
    with notifier.listen("@bob:x") as bob, notifier.listen("@carol:x") as carol:
        replication.handle({"t": StreamToken(events=7, receipts=2).encode(), "u": ["@bob:x"]})
        assert bob.done() and not carol.done()
    assert replication.state.streams.current() == StreamToken(events=7, receipts=2)


async def test_a_sync_with_a_newer_token_waits_until_the_worker_has_heard_of_it() -> None:
    """Answering it with older positions would deliver the events in between twice."""
    replication = worker()
    since = StreamToken(events=5, typing=99)  # typing is not waited for: it is not durable
    waiting = asyncio.create_task(replication.catch_up(since))
    await asyncio.sleep(0)  # one turn of the loop: the task runs up to its wait
    assert replication._advanced and not waiting.done()
    replication.handle({"t": StreamToken(events=4).encode(), "u": []})
    replication.handle({"t": StreamToken(events=5).encode(), "u": []})
    await asyncio.wait_for(waiting, 5)


def test_typing_is_mirrored_across_split_messages_and_forgotten_on_a_main_restart() -> None:
    replication = worker()
    typing = replication.state.typing
    replication.handle({"t": StreamToken(typing=100).encode(), "u": [], "epoch": "run1"})
    replication.handle({"typing": "!r:x", "p": 101, "u": ["@a:x"]})
    replication.handle({"typing": "!r:x", "p": 101, "u": ["@b:x"], "cont": True})
    replication.handle({"t": StreamToken(typing=101).encode(), "u": []})
    assert typing.events(["!r:x"], 100) == {
        "!r:x": {"type": "m.typing", "content": {"user_ids": ["@a:x", "@b:x"]}}
    }
    replication.handle({"typing": "!r:x", "p": 102, "u": ["@b:x"]})  # a stopped typing
    assert typing.events(["!r:x"], 101)["!r:x"]["content"] == {"user_ids": ["@b:x"]}

    # A new run of the main process starts with nobody typing.
    replication.handle({"t": StreamToken(typing=500).encode(), "u": [], "epoch": "run2"})
    assert typing.events(["!r:x"], 102)["!r:x"]["content"] == {"user_ids": []}


def test_a_token_dropped_on_main_is_forgotten_here() -> None:
    replication = worker()
    tokens = replication.state.tokens
    tokens.put(b"bob", Requester("@bob:x", "DEV", False), None, tokens.generation)
    tokens.put(b"other", Requester("@bob:x", "OTHER", False), None, tokens.generation)
    replication.handle({"inv": "tokens", "k": [["@bob:x", "DEV"]]})
    assert tokens.get(b"bob") is None
    assert tokens.get(b"other") is not None


class _Users:
    """A connection that answers the erased users' query, counting how often it is asked."""

    def __init__(self, erased: list[str]) -> None:
        self.erased, self.reads = erased, 0

    async def fetch(self, query: str, *args: object) -> list[dict[str, str]]:
        self.reads += 1
        return [{"user_id": u} for u in self.erased]


async def test_an_erasure_on_main_makes_the_worker_read_the_erased_users_again() -> None:
    replication = worker()
    engine = RoomCache(
        server_name="x", recent=RecentEvents(known_since=0, max_bytes=0),
        event_cache_max_bytes=0,
    )
    replication.state.engine = engine
    conn = cast(Any, _Users([]))
    for _ in range(3):
        assert await engine.erased(conn, ["@alice:x"]) == set()
    assert conn.reads == 1
    conn.erased = ["@alice:x"]
    replication.handle({"inv": "erased", "k": ["@alice:x"]})
    assert await engine.erased(conn, ["@alice:x", "@bob:x"]) == {"@alice:x"}
    assert await engine.erased(conn, ["@alice:x"]) == {"@alice:x"}
    assert conn.reads == 2
