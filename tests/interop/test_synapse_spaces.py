"""Spaces, room summaries and jump to date between Moot and a real Synapse, both ways: each
server's space hierarchy shows a child room only the other holds (federation `/hierarchy`), a
room summary of a Synapse room reaches a Moot client, and each server finds history from before
its join on the other (federation `/timestamp_to_event`, then `/event`). One Synapse serves the
module (tests/synapse_peer.py); every test makes its own Moot server, users and rooms."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp

from tests.federation_peers import Peers, eventually, joined_members
from tests.helpers import MatrixApi, User, validate_response
from tests.synapse_peer import SynapsePeer

HIERARCHY = "/_matrix/client/v1/rooms/{}/hierarchy"
TIMESTAMP = "/_matrix/client/v1/rooms/{}/timestamp_to_event"


async def add_child(api: MatrixApi, user: User, space: str, child: str, via: str) -> None:
    await api.ok("PUT", f"rooms/{quote(space)}/state/m.space.child/{quote(child)}",
                 json={"via": [via]}, token=user.token)


async def space_with_child(api: MatrixApi, user: User, child: str, via: str) -> str:
    space = await api.create_room(user, preset="public_chat", name="Space",
                                  creation_content={"type": "m.space"})
    await add_child(api, user, space, child, via)
    return space


async def rooms_of(api: MatrixApi, user: User, space: str) -> dict[str, dict[str, Any]]:
    """The space's hierarchy as the user sees it, by room ID in the order given."""
    body = await api.ok("GET", HIERARCHY.format(quote(space)), token=user.token)
    validate_response("space_hierarchy.yaml", "/rooms/{roomId}/hierarchy", "get", 200, body)
    return {r["room_id"]: r for r in body["rooms"]}


async def test_a_moot_space_shows_a_synapse_room(
    peers: Peers, peer_http: aiohttp.ClientSession, synapse: SynapsePeer
) -> None:
    moot = await peers.new("moot")
    api = moot.api(peer_http)
    alice = await api.register("alice")
    bob = await synapse.new_user("bob")
    lounge = await synapse.api.create_room(bob, preset="public_chat", name="Synapse lounge")
    space = await space_with_child(api, alice, lounge, synapse.server_name)

    rooms = await rooms_of(api, alice, space)
    assert list(rooms) == [space, lounge]
    assert (rooms[lounge]["name"], rooms[lounge]["num_joined_members"]) == ("Synapse lounge", 1)

    summary = await api.ok("GET", f"/_matrix/client/v1/room_summary/{quote(lounge)}",
                           token=alice.token, params={"via": synapse.server_name})
    validate_response("room_summary.yaml", "/room_summary/{roomIdOrAlias}", "get", 200, summary)
    assert (summary["room_id"], summary["name"]) == (lounge, "Synapse lounge")


async def test_a_synapse_space_shows_a_moot_room(
    peers: Peers, peer_http: aiohttp.ClientSession, synapse: SynapsePeer
) -> None:
    moot = await peers.new("moot")
    api = moot.api(peer_http)
    alice = await api.register("alice")
    bob = await synapse.new_user("bob")
    garden = await api.create_room(alice, preset="public_chat", name="Moot garden")
    secret = await api.create_room(alice, name="Moot secret")
    space = await space_with_child(synapse.api, bob, garden, moot.name)
    await add_child(synapse.api, bob, space, secret, moot.name)

    rooms = await rooms_of(synapse.api, bob, space)
    assert set(rooms) == {space, garden}  # Moot keeps the secret from Synapse
    assert rooms[garden]["name"] == "Moot garden"


async def test_jump_to_date_finds_history_on_the_other_server(
    peers: Peers, peer_http: aiohttp.ClientSession, synapse: SynapsePeer
) -> None:
    moot = await peers.new("moot")
    api = moot.api(peer_http)
    alice = await api.register("alice")
    sapi = synapse.api
    bob = await synapse.new_user("bob")

    async def old_message(host: MatrixApi, user: User, room_id: str) -> dict[str, Any]:
        event_id = await host.send_message(user, room_id, "before the other server joined")
        return dict(await host.ok("GET", f"rooms/{quote(room_id)}/event/{quote(event_id)}",
                                  token=user.token))

    # A Synapse room Alice joins late, and a Moot room Bob joins late.
    on_synapse = await sapi.create_room(bob, preset="public_chat")
    on_moot = await api.create_room(alice, preset="public_chat")
    old_on_synapse = await old_message(sapi, bob, on_synapse)
    old_on_moot = await old_message(api, alice, on_moot)
    await api.ok("POST", f"join/{quote(on_synapse)}", token=alice.token, json={},
                 params={"via": synapse.server_name})
    await sapi.ok("POST", f"join/{quote(on_moot)}", token=bob.token, json={},
                  params={"server_name": moot.name})
    both = {alice.user_id, bob.user_id}
    await eventually(lambda: _same(joined_members(api, alice, on_moot), both), "Bob on Moot")

    for reader_api, reader, room_id, old in (
        (api, alice, on_synapse, old_on_synapse), (sapi, bob, on_moot, old_on_moot),
    ):
        body = await reader_api.ok(
            "GET", TIMESTAMP.format(quote(room_id)), token=reader.token,
            params={"ts": str(old["origin_server_ts"]), "dir": "b"},
        )
        assert body["origin_server_ts"] <= old["origin_server_ts"], (room_id, body)
        # The reader's server now holds the event it named.
        await reader_api.ok("GET", f"rooms/{quote(room_id)}/event/{quote(body['event_id'])}",
                            token=reader.token)


async def _same(found: Any, expected: set[str]) -> bool:
    return bool(await found == expected)
