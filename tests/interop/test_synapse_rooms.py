"""Rooms shared by Moot and a real Synapse over TLS on loopback, both ways.

A Synapse user joins a room that lives on Moot, and a Moot user joins a room that lives on
Synapse (room versions 10 and 12: v12 names the room by its create event's hash and leaves the
create event out of auth_events); messages and state changes then travel both ways. A Moot user
joining a Synapse room with history reads back past the join (Moot backfills from Synapse);
typing and receipts cross; a Synapse user banned on Moot cannot post to Moot's users. One
Synapse serves the module (tests/synapse_peer.py); every test makes its own Moot server, users
and rooms.
"""

from __future__ import annotations

import itertools
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from tests.federation_peers import Peer, Peers
from tests.helpers import MatrixApi, User
from tests.integration.test_federation_rooms import eventually
from tests.synapse_peer import SynapsePeer

_USER_NUMBERS = itertools.count()


async def synapse_user(synapse: SynapsePeer, localpart: str) -> User:
    """A new Synapse user; the module shares one Synapse, so every name is new."""
    return await synapse.api.register(f"{localpart}{next(_USER_NUMBERS)}")


async def moot_with_user(peers: Peers, http: aiohttp.ClientSession) -> tuple[Peer, MatrixApi, User]:
    moot = await peers.new("moot")
    api = moot.api(http)
    return moot, api, await api.register("alice")


async def messages(api: MatrixApi, user: User, room_id: str, **params: str) -> dict[str, Any]:
    body: dict[str, Any] = await api.ok(
        "GET", f"rooms/{quote(room_id)}/messages", token=user.token,
        params={"dir": "b", "limit": "100", **params},
    )
    return body


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


async def joined(api: MatrixApi, user: User, room_id: str) -> set[str]:
    status, body = await api.request(
        "GET", f"rooms/{quote(room_id)}/joined_members", token=user.token
    )
    return set(body["joined"]) if status == 200 else set()


async def join(api: MatrixApi, user: User, room_id: str, server: str) -> None:
    await api.ok(
        "POST", f"join/{quote(room_id)}", token=user.token, json={},
        params={"server_name": server},
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


async def exchange_messages(
    one: tuple[MatrixApi, User], other: tuple[MatrixApi, User], room_id: str
) -> None:
    """A message each way, each read by the other side with /messages."""
    for (api, user), (reader_api, reader) in ((one, other), (other, one)):
        text = f"hello from {user.user_id}"
        await api.send_message(user, room_id, text)
        await eventually(
            lambda: has_message(reader_api, reader, room_id, text),
            f"{user.user_id}'s message at {reader.user_id}",
        )


# --- a Synapse user in a room that lives on Moot ------------------------------------------------

@pytest.mark.parametrize("room_version", ["10", "12"])
async def test_a_synapse_user_joins_a_moot_room(
    peers: Peers, peer_http: aiohttp.ClientSession, synapse: SynapsePeer, room_version: str
) -> None:
    moot, api, alice = await moot_with_user(peers, peer_http)
    room_id = await api.create_room(alice, preset="public_chat", room_version=room_version)
    bob = await synapse_user(synapse, "bob")
    await join(synapse.api, bob, room_id, moot.name)

    both = {alice.user_id, bob.user_id}
    await eventually(lambda: _equal(joined(api, alice, room_id), both), "Bob's join on Moot")
    assert await joined(synapse.api, bob, room_id) == both
    await exchange_messages((api, alice), (synapse.api, bob), room_id)

    # Moot's state change reaches Synapse; Synapse's (Bob's own member event) reaches Moot.
    await set_state(api, alice, room_id, "m.room.topic", {"topic": "set on moot"})
    await eventually(
        lambda: _field(state_content(synapse.api, bob, room_id, "m.room.topic"), "topic",
                       "set on moot"),
        "Moot's topic on Synapse",
    )
    await set_state(synapse.api, bob, room_id, "m.room.member",
                    {"membership": "join", "displayname": "Bob renamed"}, bob.user_id)
    await eventually(
        lambda: _field(state_content(api, alice, room_id, "m.room.member", bob.user_id),
                       "displayname", "Bob renamed"),
        "Bob's new display name on Moot",
    )


# --- a Moot user in a room that lives on Synapse ------------------------------------------------

@pytest.mark.parametrize("room_version", ["10", "12"])
async def test_a_moot_user_joins_a_synapse_room(
    peers: Peers, peer_http: aiohttp.ClientSession, synapse: SynapsePeer, room_version: str
) -> None:
    moot, api, alice = await moot_with_user(peers, peer_http)
    bob = await synapse_user(synapse, "bob")
    room_id = await synapse.api.create_room(bob, preset="public_chat", room_version=room_version)
    await synapse.api.ok(
        "PUT", f"rooms/{quote(room_id)}/state/m.room.topic", token=bob.token,
        json={"topic": "set on synapse"},
    )
    await join(api, alice, room_id, synapse.server_name)

    both = {alice.user_id, bob.user_id}
    assert await joined(api, alice, room_id) == both
    assert (await state_content(api, alice, room_id, "m.room.topic") or {}).get(
        "topic") == "set on synapse"
    await eventually(
        lambda: _equal(joined(synapse.api, bob, room_id), both), "Alice's join on Synapse"
    )
    await exchange_messages((synapse.api, bob), (api, alice), room_id)

    await set_state(synapse.api, bob, room_id, "m.room.topic", {"topic": "changed on synapse"})
    await eventually(
        lambda: _field(state_content(api, alice, room_id, "m.room.topic"), "topic",
                       "changed on synapse"),
        "Synapse's new topic on Moot",
    )
    await set_state(api, alice, room_id, "m.room.member",
                    {"membership": "join", "displayname": "Alice renamed"}, alice.user_id)
    await eventually(
        lambda: _field(state_content(synapse.api, bob, room_id, "m.room.member", alice.user_id),
                       "displayname", "Alice renamed"),
        "Alice's new display name on Synapse",
    )


async def _equal(found: Any, want: Any) -> bool:
    return bool(await found == want)


async def _field(found: Any, key: str, want: Any) -> bool:
    content = await found
    return content is not None and content.get(key) == want
