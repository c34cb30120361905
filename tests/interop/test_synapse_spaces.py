"""Spaces, room summaries and jump to date between Moot and a real Synapse, both ways: each
server's space hierarchy shows a child room only the other holds (federation `/hierarchy`), a
user of each server browses a space that lives wholly on the other (its rooms, a subspace, with
`suggested_only`, `max_depth` and pagination), a room summary of a Synapse room reaches a Moot
client, and each server finds history from before
its join on the other (federation `/timestamp_to_event`, then `/event`). One Synapse serves the
module (tests/synapse_peer.py); every test makes its own Moot server, users and rooms."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp

from tests.federation_peers import Peers, eventually, joined_members
from tests.helpers import MatrixApi, User, validate_response
from tests.spaces import add_child
from tests.synapse_peer import SynapsePeer, moot_and_synapse_users
from tests.synapse_rooms import join

HIERARCHY = "/_matrix/client/v1/rooms/{}/hierarchy"
TIMESTAMP = "/_matrix/client/v1/rooms/{}/timestamp_to_event"


async def space_with_child(api: MatrixApi, user: User, child: str, via: str) -> str:
    space = await api.create_room(user, preset="public_chat", name="Space",
                                  creation_content={"type": "m.space"})
    await add_child(api, user, space, child, via)
    return space


async def rooms_of(
    api: MatrixApi, user: User, space: str, **params: str
) -> dict[str, dict[str, Any]]:
    """The space's hierarchy as the user sees it (every page), by room ID in the order given."""
    rooms: dict[str, dict[str, Any]] = {}
    while True:
        body = await api.ok("GET", HIERARCHY.format(quote(space)), token=user.token,
                            params=params)
        validate_response("space_hierarchy.yaml", "/rooms/{roomId}/hierarchy", "get", 200, body)
        for room in body["rooms"]:
            assert room["room_id"] not in rooms, ("shown twice", room)
            rooms[room["room_id"]] = room
        if "next_batch" not in body:
            return rooms
        params = {**params, "from": body["next_batch"]}


async def nested_space(api: MatrixApi, user: User, server: str) -> dict[str, str]:
    """A public space of ``user``'s: a suggested `lounge`, a `garage` and a suggested subspace
    `wing` holding a suggested `attic`, ordered so (by the children's `order`); name -> ID."""
    async def room(name: str, **body: Any) -> str:
        return await api.create_room(user, preset="public_chat", name=name, **body)

    space = {"type": "m.space"}
    ids = {"space": await room("space", creation_content=space),
           "lounge": await room("lounge"), "garage": await room("garage"),
           "wing": await room("wing", creation_content=space), "attic": await room("attic")}
    for parent, child, order, suggested in (
        ("space", "lounge", "a", True), ("space", "garage", "b", False),
        ("space", "wing", "c", True), ("wing", "attic", "a", True),
    ):
        await add_child(api, user, ids[parent], ids[child], server, order=order,
                        suggested=suggested)
    return ids


async def browse_nested_space(
    api: MatrixApi, user: User, ids: dict[str, str]
) -> None:
    """``user`` (of ``api``'s server) browses the space of `nested_space` living on another
    server: whole, one room a page, suggested rooms only, and one level deep."""
    names = {room_id: name for name, room_id in ids.items()}

    async def walk(**params: str) -> list[str]:
        return [names[r] for r in await rooms_of(api, user, ids["space"], **params)]

    assert await walk() == ["space", "lounge", "garage", "wing", "attic"]
    assert await walk(limit="1") == ["space", "lounge", "garage", "wing", "attic"]
    assert await walk(suggested_only="true") == ["space", "lounge", "wing", "attic"]
    assert await walk(max_depth="1") == ["space", "lounge", "garage", "wing"]
    rooms = await rooms_of(api, user, ids["space"])
    assert rooms[ids["wing"]]["room_type"] == "m.space"
    assert [c["state_key"] for c in rooms[ids["space"]]["children_state"]] == [
        ids["lounge"], ids["garage"], ids["wing"],
    ]


async def test_a_moot_space_shows_a_synapse_room(
    peers: Peers, peer_http: aiohttp.ClientSession, synapse: SynapsePeer
) -> None:
    _moot, api, alice, bob = await moot_and_synapse_users(peers, peer_http, synapse)
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
    moot, api, alice, bob = await moot_and_synapse_users(peers, peer_http, synapse)
    garden = await api.create_room(alice, preset="public_chat", name="Moot garden")
    secret = await api.create_room(alice, name="Moot secret")
    space = await space_with_child(synapse.api, bob, garden, moot.name)
    await add_child(synapse.api, bob, space, secret, moot.name)

    rooms = await rooms_of(synapse.api, bob, space)
    assert set(rooms) == {space, garden}  # Moot keeps the secret from Synapse
    assert rooms[garden]["name"] == "Moot garden"


async def test_a_moot_user_browses_a_space_living_on_synapse(
    peers: Peers, peer_http: aiohttp.ClientSession, synapse: SynapsePeer
) -> None:
    _moot, api, alice, bob = await moot_and_synapse_users(peers, peer_http, synapse)
    ids = await nested_space(synapse.api, bob, synapse.server_name)
    # Invited, Moot holds none of it: it asks the inviting server about the space too.
    await synapse.api.invite(bob, quote(ids["space"]), alice)
    assert list(await rooms_of(api, alice, ids["space"])) == [
        ids[name] for name in ("space", "lounge", "garage", "wing", "attic")
    ]
    await join(api, alice, ids["space"], synapse.server_name)  # Moot holds only the space
    await browse_nested_space(api, alice, ids)


async def test_a_synapse_user_browses_a_space_living_on_moot(
    peers: Peers, peer_http: aiohttp.ClientSession, synapse: SynapsePeer
) -> None:
    moot, api, alice, bob = await moot_and_synapse_users(peers, peer_http, synapse)
    ids = await nested_space(api, alice, moot.name)
    await join(synapse.api, bob, ids["space"], moot.name)  # Synapse holds only the space
    await browse_nested_space(synapse.api, bob, ids)


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
