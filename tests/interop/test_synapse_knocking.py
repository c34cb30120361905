"""Knocking between Moot and a real Synapse, both ways (server-server-api "Knocking upon a
room"): a Moot user knocks on a Synapse room (Moot's make_knock/send_knock), a Synapse user on
a Moot room (Moot answering them); in each the room's admin sees the knock and invites, and the
knocker joins. Knocking came with room version 7, so each test runs in rooms of v7 to v11.
One Synapse serves the module (tests/synapse_peer.py); every test makes its own
Moot server, users and rooms."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from tests.federation_peers import Peers, eventually
from tests.helpers import MatrixApi, User, validate_response
from tests.synapse_peer import SynapsePeer

KNOCK_RULE = {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}


KNOCK_VERSIONS = pytest.mark.parametrize("room_version", ["7", "8", "9", "10", "11"])


async def knock_room(api: MatrixApi, admin: User, room_version: str) -> str:
    return await api.create_room(admin, preset="private_chat", room_version=room_version,
                                 name="Knock here", initial_state=[KNOCK_RULE])


async def membership(api: MatrixApi, user: User, room_id: str, who: str) -> str | None:
    status, body = await api.request(
        "GET", f"rooms/{quote(room_id)}/state/m.room.member/{quote(who)}", token=user.token
    )
    return body.get("membership") if status == 200 else None


async def sync_rooms(api: MatrixApi, user: User, section: str) -> dict[str, Any]:
    body = await api.sync(user, timeout=0)
    validate_response("sync.yaml", "/sync", "get", 200, body)
    rooms: dict[str, Any] = body["rooms"][section]
    return rooms


def own(events: list[dict[str, Any]], user: User) -> list[str]:
    return [e["content"]["membership"] for e in events
            if e["type"] == "m.room.member" and e["state_key"] == user.user_id]


@KNOCK_VERSIONS
async def test_a_moot_user_knocks_on_a_synapse_room(
    peers: Peers, peer_http: aiohttp.ClientSession, synapse: SynapsePeer, room_version: str
) -> None:
    moot = await peers.new("moot")
    api = moot.api(peer_http)
    bob = await api.register("bob")
    carol = await synapse.new_user("carol")
    room_id = await knock_room(synapse.api, carol, room_version)

    await api.ok("POST", f"knock/{quote(room_id)}", token=bob.token,
                 json={"reason": "hello"}, params={"via": synapse.server_name})
    knocked = (await sync_rooms(api, bob, "knock"))[room_id]["knock_state"]["events"]
    assert {e["type"]: e for e in knocked}["m.room.name"]["content"]["name"] == "Knock here"
    assert own(knocked, bob) == ["knock"]
    # Synapse's send_knock persists the knock before it answers.
    assert await membership(synapse.api, carol, room_id, bob.user_id) == "knock"

    await synapse.api.invite(carol, room_id, bob)
    invited = await sync_rooms(api, bob, "invite")
    assert own(invited[room_id]["invite_state"]["events"], bob) == ["invite"]
    assert room_id not in await sync_rooms(api, bob, "knock")
    await api.ok("POST", f"join/{quote(room_id)}", token=bob.token, json={})
    assert await membership(synapse.api, carol, room_id, bob.user_id) == "join"


@KNOCK_VERSIONS
async def test_a_synapse_user_knocks_on_a_moot_room(
    peers: Peers, peer_http: aiohttp.ClientSession, synapse: SynapsePeer, room_version: str
) -> None:
    moot = await peers.new("moot")
    api = moot.api(peer_http)
    alice = await api.register("alice")
    dave = await synapse.new_user("dave")
    room_id = await knock_room(api, alice, room_version)

    await synapse.api.ok("POST", f"knock/{quote(room_id)}", token=dave.token, json={},
                         params={"via": moot.name})
    assert await membership(api, alice, room_id, dave.user_id) == "knock"
    knocked = await eventually(
        lambda: _knock_state(synapse.api, dave, room_id), "the knock in Dave's sync"
    )
    assert {e["type"]: e for e in knocked}["m.room.name"]["content"]["name"] == "Knock here"

    await api.invite(alice, room_id, dave)
    await synapse.api.ok("POST", f"join/{quote(room_id)}", token=dave.token, json={})
    assert await membership(api, alice, room_id, dave.user_id) == "join"


async def _knock_state(api: MatrixApi, user: User, room_id: str) -> list[dict[str, Any]]:
    room = (await sync_rooms(api, user, "knock")).get(room_id, {})
    events: list[dict[str, Any]] = room.get("knock_state", {}).get("events", [])
    return events
