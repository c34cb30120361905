"""Profiles between Moot and a real Synapse over TLS on loopback: extended fields (v1.16) read
across servers both ways, and a Moot user's rename reaching a room that lives on Synapse as
a member event. One Synapse serves the module (tests/synapse_peer.py)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp

from tests.federation_peers import Peers, eventually, joined_members
from tests.synapse_peer import SynapsePeer


async def test_extended_fields_cross_both_ways(
    peers: Peers, peer_http: aiohttp.ClientSession, synapse: SynapsePeer
) -> None:
    moot = await peers.new("moot")
    api = moot.api(peer_http)
    alice = await api.register("alice")
    await api.ok("PUT", f"profile/{quote(alice.user_id)}/m.tz", json={"m.tz": "Europe/Oslo"},
                 token=alice.token)
    sapi, bob = synapse.api, await synapse.new_user("prof")
    await sapi.ok("PUT", f"profile/{quote(bob.user_id)}/m.tz", json={"m.tz": "Asia/Tokyo"},
                  token=bob.token)

    # Synapse asks Moot's query/profile for the one field.
    assert await sapi.ok("GET", f"profile/{quote(alice.user_id)}/m.tz", token=bob.token) == {
        "m.tz": "Europe/Oslo"
    }
    assert await api.ok("GET", f"profile/{quote(bob.user_id)}/m.tz", token=alice.token) == {
        "m.tz": "Asia/Tokyo"
    }


async def test_a_moot_rename_reaches_a_synapse_room(
    peers: Peers, peer_http: aiohttp.ClientSession, synapse: SynapsePeer
) -> None:
    moot = await peers.new("moot")
    api = moot.api(peer_http)
    alice = await api.register("alice")
    sapi, bob = synapse.api, await synapse.new_user("prof")
    room_id = await sapi.create_room(bob, preset="public_chat")
    await api.ok("POST", f"join/{quote(room_id)}", token=alice.token, json={},
                 params={"via": synapse.server_name})

    async def joined_on_synapse() -> bool:
        return alice.user_id in await joined_members(sapi, bob, room_id)

    await eventually(joined_on_synapse, "Alice's join on Synapse")
    await api.ok("PUT", f"profile/{quote(alice.user_id)}/displayname",
                 json={"displayname": "Alice renamed"}, token=alice.token)
    await api.ok("PUT", f"profile/{quote(alice.user_id)}/avatar_url",
                 json={"avatar_url": f"mxc://{moot.name}/alice"}, token=alice.token)

    async def renamed_on_synapse() -> Any:
        status, content = await sapi.request(
            "GET", f"rooms/{quote(room_id)}/state/m.room.member/{quote(alice.user_id)}",
            token=bob.token,
        )
        return status == 200 and content == {
            "membership": "join", "displayname": "Alice renamed",
            "avatar_url": f"mxc://{moot.name}/alice",
        }

    await eventually(renamed_on_synapse, "Alice's new profile in her member event on Synapse")
