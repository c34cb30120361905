"""Moot and a real Synapse change a room's name while the link between them is cut; once it is
mended, both converge on one name (state resolution, which both implement) within a minute,
and each one's client sees it in /sync (`use_state_after`; MSC4222's names on Synapse).

Each server's federation port is a `TcpRelay` (tests/link_cut.py) in front of its listener;
cutting both relays cuts the link both ways. This module runs its own Synapse, behind a relay.
"""

from __future__ import annotations

from pathlib import Path

from tests.federation_helpers import free_port
from tests.federation_peers import Peers, eventually, joined_members
from tests.link_cut import CONVERGENCE_DEADLINE_S, SyncedState, TcpRelay, current_name, holds
from tests.synapse_peer import run_synapse
from tests.synapse_rooms import join, set_state, synapse_user

MSC4222 = ("org.matrix.msc4222.use_state_after", "org.matrix.msc4222.state_after")


async def relay_to(peers: Peers, listen: int, port: int | None = None) -> TcpRelay:
    relay = await TcpRelay(port or free_port(), listen).start()
    peers.stack.push_async_callback(relay.stop)
    return relay


async def test_moot_and_synapse_converge_after_concurrent_renames(
    peers: Peers, tmp_path: Path
) -> None:
    moot_listen, synapse_listen = free_port(), free_port()
    moot = await peers.new("moot", listen_port=moot_listen)
    relays = [await relay_to(peers, moot_listen, moot.port), await relay_to(peers, synapse_listen)]
    async with run_synapse(
        tmp_path / "synapse", {"experimental_features": {"msc4222_enabled": True}},
        federation_port=relays[1].port, listen_port=synapse_listen,
    ) as synapse:
        api_m = moot.api(synapse.http)
        alice = await api_m.register("alice")
        api_s, bob = await synapse_user(synapse, "bob")
        room_id = await api_m.create_room(
            alice, preset="public_chat", name="Before",
            power_level_content_override={"users": {bob.user_id: 100}},
        )
        await join(api_s, bob, room_id, moot.name)

        async def joined() -> bool:
            return bob.user_id in await joined_members(api_m, alice, room_id)

        await eventually(joined, "bob's join on Moot")
        clients = [
            SyncedState(api_m, alice, room_id, True),
            SyncedState(api_s, bob, room_id, True, MSC4222),
        ]
        for client in clients:
            await client.sync()

        for relay in relays:
            relay.cut()
        # Synapse's first: Moot's, later, should win, so that the event arriving at Moot is
        # the one that loses (its state_after must not show it).
        renames = [
            await set_state(api_s, bob, room_id, "m.room.name", {"name": "Synapse's"}),
            await set_state(api_m, alice, room_id, "m.room.name", {"name": "Moot's"}),
        ]
        for client in clients:
            await client.sync()
        assert [c.content("m.room.name") for c in clients] == [
            {"name": "Moot's"}, {"name": "Synapse's"},
        ]
        for relay in relays:
            relay.mend()

        async def converged() -> str | None:
            if not (await holds(api_m, alice, room_id, renames)
                    and await holds(api_s, bob, room_id, renames)):
                return None
            names = {await current_name(api_m, alice, room_id),
                     await current_name(api_s, bob, room_id)}
            for client in clients:
                await client.sync()
                names.add((client.content("m.room.name") or {}).get("name"))
            return names.pop() if len(names) == 1 and names != {"Before"} else None

        agreed = await eventually(converged, "both hold both names and all agree on one",
                                  CONVERGENCE_DEADLINE_S)
        assert agreed in ("Moot's", "Synapse's")
