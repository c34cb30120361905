"""Each server's published room directory browsed from the other, between Moot and a real
Synapse: a Moot user lists and searches Synapse's directory through Moot (`GET`/`POST
/publicRooms?server=`), and a Synapse user lists and searches Moot's through Synapse (both ask
federation `publicRooms`). Synapse serves its directory over federation and lets its users
publish rooms only when configured to, so this module's Synapse is."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.federation_peers import Peers
from tests.helpers import MatrixApi, User, validate_response
from tests.synapse_peer import SynapsePeer, moot_and_synapse_users, run_synapse

OPEN_DIRECTORY = {
    "allow_public_rooms_over_federation": True,
    "room_list_publication_rules": [{"action": "allow"}],
}


@pytest.fixture(scope="module")
async def synapse_process(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[SynapsePeer]:
    """This module's Synapse: its directory open to its users and to other servers."""
    async with run_synapse(tmp_path_factory.mktemp("synapse"), OPEN_DIRECTORY) as peer:
        yield peer


async def directory_of(
    api: MatrixApi, user: User, server: str, search: str | None = None
) -> list[dict[str, Any]]:
    """``server``'s published rooms as ``user`` lists them through ``api``'s server: a GET, or
    a POST searching for ``search``; checked against the spec's response schema."""
    if search is None:
        body = await api.ok("GET", "publicRooms", token=user.token, params={"server": server})
    else:
        body = await api.ok("POST", "publicRooms", token=user.token, params={"server": server},
                            json={"limit": 20, "filter": {"generic_search_term": search}})
    method = "get" if search is None else "post"
    validate_response("list_public_rooms.yaml", "/publicRooms", method, 200, body)
    chunk: list[dict[str, Any]] = body["chunk"]
    return chunk


def names(chunk: list[dict[str, Any]]) -> dict[str, str]:
    return {r["room_id"]: r.get("name", "") for r in chunk}


async def test_a_moot_user_browses_synapse_s_directory(
    peers: Peers, peer_http: aiohttp.ClientSession, synapse: SynapsePeer
) -> None:
    _moot, api, alice, bob = await moot_and_synapse_users(peers, peer_http, synapse)
    otters = await synapse.api.create_room(bob, visibility="public", preset="public_chat",
                                           name="Otter holt", topic="Sea otters")
    beavers = await synapse.api.create_room(bob, visibility="public", preset="public_chat",
                                            name="Beaver dam")
    hidden = await synapse.api.create_room(bob, preset="private_chat", name="Otter secrets")

    listed = names(await directory_of(api, alice, synapse.server_name))
    assert {otters: "Otter holt", beavers: "Beaver dam"}.items() <= listed.items()
    assert hidden not in listed
    found = await directory_of(api, alice, synapse.server_name, search="otter")
    assert names(found) == {otters: "Otter holt"}
    assert (found[0]["topic"], found[0]["num_joined_members"]) == ("Sea otters", 1)


async def test_a_synapse_user_browses_moot_s_directory(
    peers: Peers, peer_http: aiohttp.ClientSession, synapse: SynapsePeer
) -> None:
    moot, api, alice, bob = await moot_and_synapse_users(peers, peer_http, synapse)
    herons = await api.create_room(alice, visibility="public", preset="public_chat",
                                   name="Heron pond", topic="Grey herons",
                                   room_alias_name="herons")
    egrets = await api.create_room(alice, visibility="public", preset="public_chat",
                                   name="Egret marsh")
    hidden = await api.create_room(alice, preset="private_chat", name="Heron secrets")

    listed = names(await directory_of(synapse.api, bob, moot.name))
    assert listed == {herons: "Heron pond", egrets: "Egret marsh"}
    assert hidden not in listed
    found = await directory_of(synapse.api, bob, moot.name, search="heron")
    assert names(found) == {herons: "Heron pond"}
    assert found[0]["canonical_alias"] == f"#herons:{moot.name}"
