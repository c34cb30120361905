"""Unmodified matrix-nio clients (without encryption) against a Moot server: making and
registering them, checking their responses, and what nio lacks (a password change with UIA,
unread counts read from /sync).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import nio

from tests.conftest import RunningServer
from tests.helpers import PASSWORD

SYNC_DEADLINE_S = 20.0
SYNC_TIMEOUT_MS = 2_000
T = TypeVar("T")


def ok(response: T, what: str) -> T:
    """The response, after checking nio did not turn it into an error."""
    assert not isinstance(response, nio.ErrorResponse), f"{what} failed: {response}"
    return response


def new_client(server: RunningServer, localpart: str) -> nio.AsyncClient:
    config = nio.AsyncClientConfig(encryption_enabled=False, store_sync_tokens=False)
    return nio.AsyncClient(server.url, localpart, config=config)


async def register(client: nio.AsyncClient) -> None:
    response = ok(await client.register(client.user, PASSWORD, "nio test"), "register")
    assert isinstance(response, nio.RegisterResponse)
    assert client.access_token == response.access_token
    assert client.user_id == response.user_id


NEW_PASSWORD = "a much better passphrase"


def password_stage(client: nio.AsyncClient, session: str, password: str) -> dict[str, Any]:
    return {
        "type": "m.login.password", "session": session, "password": password,
        "identifier": {"type": "m.id.user", "user": client.user_id},
    }


async def change_password(
    client: nio.AsyncClient, old: str, new: str, first: dict[str, Any] | None = None,
    added: dict[str, Any] | None = None,
) -> None:
    """POST /account/password: the 401 challenge to `first`, then the password stage with
    `first` plus the fields `added` (clients add or drop fields between stages)."""
    path = nio.Api._build_path(["account", "password"])
    headers = {"Authorization": f"Bearer {client.access_token}", "Content-Type": "application/json"}
    body: dict[str, Any] = {"new_password": new, **(first or {})}
    response = await client.send("POST", path, json.dumps(body), headers=headers)
    challenge = await response.json()
    assert response.status == 401, challenge
    assert challenge["flows"] == [{"stages": ["m.login.password"]}]
    body |= {**(added or {}), "auth": password_stage(client, challenge["session"], old)}
    response = await client.send("POST", path, json.dumps(body), headers=headers)
    assert response.status == 200, await response.text()


Counts = tuple[int | None, int | None]


async def sync_counts_until(
    client: nio.AsyncClient, room_id: str, done: Callable[[Counts], bool], what: str
) -> Counts:
    """Long-poll /sync until the room's unread counts, as nio parsed them, satisfy `done`."""
    deadline = time.monotonic() + SYNC_DEADLINE_S
    while True:
        response = ok(await client.sync(timeout=SYNC_TIMEOUT_MS), "sync")
        assert isinstance(response, nio.SyncResponse)
        joined = response.rooms.join.get(room_id)
        if joined is not None:
            unread = joined.unread_notifications
            counts = (unread.notification_count, unread.highlight_count)
            if done(counts):
                return counts
        assert time.monotonic() < deadline, f"{client.user_id}: never saw {what}"


