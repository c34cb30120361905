"""LISTEN/NOTIFY between processes: order is kept, and a lost connection is re-established."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from storage.notify import Listener, Publisher

DEADLINE_S = 10.0


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


class Recorder:
    def __init__(self) -> None:
        self.payloads: list[str] = []
        self.connects: list[bool] = []

    def on_message(self, channel: str, payload: str) -> None:
        assert channel == "moot_test"
        self.payloads.append(payload)

    async def on_connect(self, reconnected: bool) -> None:
        self.connects.append(reconnected)


@pytest.fixture
async def ends(
    database_url: str,
) -> AsyncIterator[tuple[Recorder, Publisher, Callable[[], Awaitable[None]]]]:
    recorder = Recorder()
    listener = Listener(database_url, ["moot_test"], recorder.on_message, recorder.on_connect)
    await listener.start()
    publisher = Publisher(database_url)
    await publisher.start()

    async def kill_connections() -> None:
        """What a PostgreSQL restart or a network cut does to both ends' sessions."""
        admin = await asyncpg.connect(database_url)
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await admin.close()

    yield recorder, publisher, kill_connections
    await publisher.close()
    await listener.close()


async def test_messages_arrive_in_publication_order(
    ends: tuple[Recorder, Publisher, Callable[[], Awaitable[None]]],
) -> None:
    recorder, publisher, _ = ends
    assert recorder.connects == [False]
    sent = [str(i) for i in range(300)]
    for payload in sent:
        publisher.publish("moot_test", payload)
    await until(lambda: len(recorder.payloads) >= len(sent), "every message")
    assert recorder.payloads == sent


async def test_both_ends_reconnect_after_losing_their_sessions(
    ends: tuple[Recorder, Publisher, Callable[[], Awaitable[None]]],
) -> None:
    recorder, publisher, kill_connections = ends
    publisher.publish("moot_test", "before")
    await until(lambda: recorder.payloads == ["before"], "the first message")
    await kill_connections()
    await until(lambda: recorder.connects == [False, True], "the listener to reconnect")
    publisher.publish("moot_test", "after")  # the publisher finds its session gone: reconnects
    await until(lambda: recorder.payloads == ["before", "after"], "a message after reconnecting")
