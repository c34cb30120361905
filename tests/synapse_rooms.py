"""Shared by the tests of rooms between Moot and Synapse (tests/interop/test_synapse_*.py):
users of a Synapse peer, joins through a server, messages both ways, state sends, redactions
and reading a room back.

Event IDs go into URLs quoted with no safe characters: room versions 1-3 name events with
characters (`/`, `+`, `:`) that a path segment must escape."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable
from functools import partial
from typing import Any
from urllib.parse import quote

from tests.federation_peers import eventually
from tests.helpers import MatrixApi, User
from tests.synapse_peer import SynapsePeer

_USER_NUMBERS = itertools.count()
_REDACTIONS = itertools.count()  # transaction IDs of redactions, unique per process


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


async def bodies(api: MatrixApi, user: User, room_id: str) -> list[str]:
    """The message bodies of the room's timeline as `user` reads it, oldest first."""
    page = await messages(api, user, room_id)
    return [
        e["content"].get("body") for e in reversed(page["chunk"])
        if e["type"] == "m.room.message"
    ]


async def has_message(api: MatrixApi, user: User, room_id: str, text: str) -> bool:
    return text in await bodies(api, user, room_id)


async def state_content(
    api: MatrixApi, user: User, room_id: str, event_type: str, state_key: str = ""
) -> dict[str, Any] | None:
    status, body = await api.request(
        "GET", f"rooms/{quote(room_id)}/state/{event_type}/{quote(state_key)}", token=user.token
    )
    return body if status == 200 else None


async def equals(found: Awaitable[Any], want: Any) -> bool:
    """Whether what ``found`` reads is ``want`` (a check for `eventually`)."""
    return bool(await found == want)


async def has_field(found: Awaitable[dict[str, Any] | None], key: str, want: Any) -> bool:
    """Whether the content ``found`` reads has ``key`` set to ``want``."""
    content = await found
    return content is not None and content.get(key) == want


async def exchange_messages(
    one: tuple[MatrixApi, User], other: tuple[MatrixApi, User], room_id: str
) -> None:
    """A message each way, each read by the other side with /messages."""
    for (api, user), (reader_api, reader) in ((one, other), (other, one)):
        text = f"hello from {user.user_id}"
        await api.send_message(user, room_id, text)
        await eventually(
            partial(has_message, reader_api, reader, room_id, text),
            f"{user.user_id}'s message at {reader.user_id}",
        )


async def state_crosses_both_ways(
    first: tuple[MatrixApi, User], second: tuple[MatrixApi, User], room_id: str,
    topic: str = "set on moot", displayname: str = "Bob renamed",
) -> None:
    """`first`'s user sets the topic, which `second`'s sees; `second`'s user renames itself
    (its own member event), which `first`'s sees."""
    (api, alice), (sapi, bob) = first, second
    await set_state(api, alice, room_id, "m.room.topic", {"topic": topic})
    await eventually(
        lambda: has_field(state_content(sapi, bob, room_id, "m.room.topic"), "topic", topic),
        f"the topic {topic!r} on the other server",
    )
    await set_state(sapi, bob, room_id, "m.room.member",
                    {"membership": "join", "displayname": displayname}, bob.user_id)
    await eventually(
        lambda: has_field(state_content(api, alice, room_id, "m.room.member", bob.user_id),
                          "displayname", displayname),
        f"the display name {displayname!r} on the other server",
    )


async def event(api: MatrixApi, user: User, room_id: str, event_id: str) -> dict[str, Any] | None:
    """One event as ``user``'s server serves it to clients (None when it does not)."""
    status, body = await api.request(
        "GET", f"rooms/{quote(room_id)}/event/{quote(event_id, safe='')}", token=user.token
    )
    return body if status == 200 else None


async def redact(api: MatrixApi, user: User, room_id: str, event_id: str) -> str:
    """Redact ``event_id``; the redaction's event ID."""
    body = await api.ok(
        "PUT", f"rooms/{quote(room_id)}/redact/{quote(event_id, safe='')}/r{next(_REDACTIONS)}",
        token=user.token, json={"reason": "interop"},
    )
    redaction: str = body["event_id"]
    return redaction
