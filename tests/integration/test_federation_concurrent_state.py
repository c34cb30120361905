"""Two Moot servers change a room's state while the link between them is cut; once it is
mended, both converge on one current state (state resolution) and their clients' /sync shows
it, including the state resolution chose that no event of the sync window carries.

Each server's federation port is a `TcpRelay` (tests/link_cut.py) in front of its listener;
cutting both relays cuts the link both ways.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import aiohttp

from tests.federation_peers import Peers, eventually, join_and_wait
from tests.helpers import MatrixApi, User
from tests.link_cut import (
    CONVERGENCE_DEADLINE_S,
    SyncedState,
    TcpRelay,
    current_name,
    cuttable_moots,
    holds,
)
from tests.sliding_sync import Connection, subscription
from tests.synapse_rooms import set_state


@dataclass
class CutRoom:
    relays: list[TcpRelay]
    api_a: MatrixApi
    api_b: MatrixApi
    alice: User
    bob: User
    room_id: str


async def cut_room(peers: Peers, peer_http: aiohttp.ClientSession, bob_level: int) -> CutRoom:
    """Two Moot servers behind relays that can cut the link; alice (a) creates a public room
    named "Before" where bob (b), joined on both servers, has power `bob_level`."""
    a, b, relays = await cuttable_moots(peers)
    api_a, api_b = a.api(peer_http), b.api(peer_http)
    alice, bob = await api_a.register("alice"), await api_b.register("bob")
    room_id = await api_a.create_room(
        alice, preset="public_chat", name="Before",
        power_level_content_override={"users": {bob.user_id: bob_level}},
    )
    await join_and_wait(api_b, bob, room_id, a, api_a, alice)
    return CutRoom(relays, api_a, api_b, alice, bob, room_id)


async def test_concurrent_name_changes_converge(peers: Peers, peer_http: aiohttp.ClientSession):
    room = await cut_room(peers, peer_http, bob_level=100)
    relays, api_a, api_b, alice, bob, room_id = (
        room.relays, room.api_a, room.api_b, room.alice, room.bob, room.room_id
    )
    clients = [SyncedState(api_a, alice, room_id, True), SyncedState(api_b, bob, room_id, True)]
    for client in clients:
        await client.sync()

    for relay in relays:
        relay.cut()
    renames = [
        await set_state(api_a, alice, room_id, "m.room.name", {"name": "Alice's"}),
        await set_state(api_b, bob, room_id, "m.room.name", {"name": "Bob's"}),
    ]
    for client in clients:
        await client.sync()  # each client sees its own server's name
    assert [c.content("m.room.name") for c in clients] == [{"name": "Alice's"}, {"name": "Bob's"}]
    for relay in relays:
        relay.mend()

    async def converged() -> str | None:
        if not (await holds(api_a, alice, room_id, renames)
                and await holds(api_b, bob, room_id, renames)):
            return None
        names = {await current_name(api_a, alice, room_id), await current_name(api_b, bob, room_id)}
        for client in clients:
            await client.sync()
            names.add((client.content("m.room.name") or {}).get("name"))
        return names.pop() if len(names) == 1 and names != {"Before"} else None

    agreed = await eventually(
        converged, "both hold both names and all agree on one", CONVERGENCE_DEADLINE_S
    )
    assert agreed in ("Alice's", "Bob's")
    # A client starting afresh too. (Without `use_state_after` a client takes state from the
    # timeline as well, where the event that lost resolution may come last on one server:
    # the legacy /sync shape cannot say it lost, which is why spec v1.16 added `state_after`.)
    for api, user in ((api_a, alice), (api_b, bob)):
        fresh = SyncedState(api, user, room_id, True)
        await fresh.sync()
        assert fresh.content("m.room.name") == {"name": agreed}


async def test_state_resolution_takes_back_to_state_no_window_shows(
    peers: Peers, peer_http: aiohttp.ClientSession
):
    """While cut, alice (a) takes bob's power away and bob (b) renames the room. Resolution
    applies the power change first, so bob's rename loses on both servers and the name goes
    back to "Before", an event older than any sync window of bob's clients: their incremental
    /sync (`state`, and sliding sync's `required_state`) must carry it."""
    room = await cut_room(peers, peer_http, bob_level=50)
    relays, api_a, api_b, alice, bob, room_id = (
        room.relays, room.api_a, room.api_b, room.alice, room.bob, room.room_id
    )
    # A filtered timeline is not the whole window: the database says whether resolution
    # moved the state in it.
    filtered = '{"room": {"timeline": {"types": ["m.room.name"]}}}'
    clients = [SyncedState(api_b, bob, room_id, False), SyncedState(api_b, bob, room_id, True),
               SyncedState(api_b, bob, room_id, False, filter=filtered)]
    sliding = Connection(api_b, bob, {"room_subscriptions": {
        room_id: subscription(1, [("m.room.name", "")]),
    }})
    sliding_name: list[str | None] = [None]

    async def sliding_sync() -> None:
        room = (await sliding.sync()).get("rooms", {}).get(room_id, {})
        for event in room.get("required_state", []):
            if event["type"] == "m.room.name":
                sliding_name[0] = event["content"].get("name")

    for client in clients:
        await client.sync()
    await sliding_sync()
    assert sliding_name[0] == "Before"

    for relay in relays:
        relay.cut()
    levels = await api_a.ok(
        "GET", f"rooms/{quote(room_id)}/state/m.room.power_levels/", token=alice.token
    )
    levels["users"][bob.user_id] = 0
    await set_state(api_a, alice, room_id, "m.room.power_levels", levels)
    await set_state(api_b, bob, room_id, "m.room.name", {"name": "Bob's"})
    for client in clients:
        await client.sync()
    await sliding_sync()
    assert [c.content("m.room.name") for c in clients] == [{"name": "Bob's"}] * 3
    assert sliding_name[0] == "Bob's"
    for relay in relays:
        relay.mend()

    async def bob_demoted() -> bool:
        levels = await api_b.ok(
            "GET", f"rooms/{quote(room_id)}/state/m.room.power_levels/", token=bob.token
        )
        return levels["users"].get(bob.user_id) == 0

    await eventually(bob_demoted, "the power change reaching b", CONVERGENCE_DEADLINE_S)
    assert await current_name(api_b, bob, room_id) == "Before"
    assert await current_name(api_a, alice, room_id) == "Before"
    for client in clients:
        await client.sync()
    await sliding_sync()
    assert [c.content("m.room.name") for c in clients] == [{"name": "Before"}] * 3
    assert sliding_name[0] == "Before"
