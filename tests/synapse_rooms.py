"""Shared by the tests of rooms between Moot and Synapse (tests/interop/test_synapse_*.py):
users of a Synapse peer, joins through a server, state sends and reading a room back."""

from __future__ import annotations

import itertools
from typing import Any
from urllib.parse import quote

from tests.helpers import MatrixApi, User
from tests.synapse_peer import SynapsePeer

_USER_NUMBERS = itertools.count()


async def synapse_user(synapse: SynapsePeer, localpart: str) -> tuple[MatrixApi, User]:
    """A client of Synapse and a new user of it (a test module may share one Synapse, so every
    name is new). Keep the client: transaction IDs count per client, and Synapse answers a reused
    one with the event it made the first time."""
    api = synapse.api
    return api, await api.register(f"{localpart}{next(_USER_NUMBERS)}")


async def messages(api: MatrixApi, user: User, room_id: str, **params: str) -> dict[str, Any]:
    body: dict[str, Any] = await api.ok(
        "GET", f"rooms/{quote(room_id)}/messages", token=user.token,
        params={"dir": "b", "limit": "100", **params},
    )
    return body


async def join(
    api: MatrixApi, user: User, room_id: str, server: str, param: str = "via"
) -> None:
    """Join through `server` (`server_name` is the older name of `via`, which Synapse still
    takes)."""
    await api.ok(
        "POST", f"join/{quote(room_id)}", token=user.token, json={}, params={param: server},
    )


async def set_state(
    api: MatrixApi, user: User, room_id: str, event_type: str, content: dict[str, Any],
    state_key: str = "",
) -> str:
    body = await api.ok(
        "PUT", f"rooms/{quote(room_id)}/state/{event_type}/{quote(state_key)}",
        token=user.token, json=content,
    )
    event_id: str = body["event_id"]
    return event_id


async def page_back(api: MatrixApi, user: User, room_id: str, limit: int) -> list[dict[str, Any]]:
    """The whole room read back with /messages `limit` events at a time, oldest first."""
    seen: list[dict[str, Any]] = []
    since: str | None = None
    for _ in range(100):
        params = {"limit": str(limit)} | ({"from": since} if since else {})
        page = await messages(api, user, room_id, **params)
        seen.extend(page["chunk"])
        since = page.get("end")
        if since is None:
            return seen[::-1]
    raise AssertionError("/messages never reached the start of the room")
