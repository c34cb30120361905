"""Two federating Moot servers sharing a room, for tests of EDUs in both directions: the pair,
a record of every EDU each server received, hand-made transactions of EDUs, and readers of
what /sync reports about them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from federation.transactions import EduHandler
from storage import device_lists as device_lists_store
from storage.database import Database
from tests.federation_helpers import validate_ss_response
from tests.federation_peers import Peer, Peers, TwoServerRoom, join_and_wait
from tests.helpers import MatrixApi, User

DEADLINE_S = 20.0
SEND = "/_matrix/federation/v1/send/"


@dataclass
class Pair(TwoServerRoom):
    """Alice of A and Bob of B, both joined to a public room that A created."""

    # (origin, edu_type, content) of every EDU each server received, in order.
    seen_by_a: list[tuple[str, str, dict[str, Any]]]
    seen_by_b: list[tuple[str, str, dict[str, Any]]]


def record_edus(peer: Peer) -> list[tuple[str, str, dict[str, Any]]]:
    """Record every EDU the server's transaction handler hands to its real handlers."""
    seen: list[tuple[str, str, dict[str, Any]]] = []
    handlers = peer.federation.transactions.edu_handlers
    for edu_type, handler in list(handlers.items()):
        def recording(edu_type: str, handler: EduHandler) -> EduHandler:
            async def record(origin: str, content: Mapping[str, Any]) -> None:
                seen.append((origin, edu_type, dict(content)))
                await handler(origin, content)
            return record
        handlers[edu_type] = recording(edu_type, handler)
    return seen


def db(peer: Peer) -> Database:
    assert peer.hs is not None and peer.hs.db is not None
    return peer.hs.db


async def pair(
    peers: Peers, http: aiohttp.ClientSession,
    before_join: Callable[[MatrixApi, User], Awaitable[Any]] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Pair:
    """Two servers (configured with `overrides`) sharing a room; `before_join` runs for Bob
    while he shares none."""
    a = await peers.new("a", overrides=overrides)
    b = await peers.new("b", overrides=overrides)
    seen_by_a, seen_by_b = record_edus(a), record_edus(b)
    api_a, api_b = a.api(http), b.api(http)
    alice, bob = await api_a.register("alice"), await api_b.register("bob")
    if before_join is not None:
        await before_join(api_b, bob)
    room_id = await api_a.create_room(alice, preset="public_chat")
    await join_and_wait(api_b, bob, room_id, a, api_a, alice)
    return Pair(a, b, api_a, api_b, alice, bob, room_id, seen_by_a, seen_by_b)


async def sync_until(
    api: MatrixApi, user: User, since: str, check: Callable[[dict[str, Any]], Any], what: str
) -> Any:
    """Incremental syncs from `since` until `check` finds what it wants in one of them."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        body = await api.sync(user, since=since, timeout=300)
        found = check(body)
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        since = body["next_batch"]


async def token(api: MatrixApi, user: User) -> str:
    next_batch: str = (await api.sync(user))["next_batch"]
    return next_batch


def ephemeral(body: dict[str, Any], room_id: str, event_type: str) -> dict[str, Any] | None:
    room = body.get("rooms", {}).get("join", {}).get(room_id, {})
    for event in room.get("ephemeral", {}).get("events", []):
        if event["type"] == event_type:
            content: dict[str, Any] = event["content"]
            return content
    return None


def typists(body: dict[str, Any], room_id: str) -> list[str] | None:
    content = ephemeral(body, room_id, "m.typing")
    return None if content is None else content["user_ids"]


def changed(body: dict[str, Any]) -> list[str]:
    users: list[str] = body["device_lists"]["changed"]
    return users


async def send_edus(src: Peer, dst: Peer, *edus: dict[str, Any]) -> dict[str, Any]:
    """A transaction of EDUs, signed and sent by `src`'s own federation client."""
    body = {
        "origin": src.name, "origin_server_ts": int(time.time() * 1000), "pdus": [],
        "edus": list(edus),
    }
    answer: dict[str, Any] = await src.federation.outbound.client.put_json(
        dst.name, SEND + uuid.uuid4().hex, body
    )
    validate_ss_response("transactions.yaml", "/send/{txnId}", "put", 200, answer)
    return answer


async def remote_stream(peer: Peer, user_id: str) -> int | None:
    """Where `peer` stands in the device-list updates of another server's user."""
    return await db(peer).run(lambda c: device_lists_store.get_remote_stream(c, user_id))


async def remote_stream_above(peer: Peer, user_id: str, position: int) -> bool:
    stream = await remote_stream(peer, user_id)
    return stream is not None and stream > position


