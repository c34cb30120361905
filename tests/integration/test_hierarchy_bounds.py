"""What another server can make the space hierarchy do is bounded: of a peer's summary only the
first `MAX_ALLOWED_ROOMS` of `allowed_room_ids` count, however many it sends, and a federation
`/hierarchy` answer judges and summarises at most `MAX_SERVED_CHILDREN` children of a space
(as Synapse's `MAX_ROOMS_PER_SPACE`); one walk asks other servers at most `MAX_ASKS` times."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from homeserver.protocol.room_previews import MAX_ALLOWED_ROOMS, MAX_CHILDREN_STATE
from homeserver.services.space_hierarchy import (
    MAX_ASKS,
    MAX_CACHED_CHILDREN,
    MAX_SERVED_CHILDREN,
)
from tests.federation_helpers import StandIn, json_handler, validate_ss_response
from tests.federation_peers import Peers
from tests.helpers import validate_response
from tests.shared_rooms import shared_room
from tests.spaces import PREFIX, SUMMARY, add_child


def restricted_summary(room_id: str, allowed: list[str]) -> dict[str, Any]:
    return {
        "room": {"room_id": room_id, "num_joined_members": 1, "join_rule": "restricted",
                 "allowed_room_ids": allowed, "children_state": []},
        "children": [], "inaccessible_children": [],
    }


async def test_a_peer_s_huge_allowed_room_list_counts_only_its_first_rooms(
    peers: Peers, peer_http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    a = await peers.new("a")
    api = a.api(peer_http)
    alice = await api.register("alice")
    club = await api.create_room(alice, preset="private_chat")  # alice is joined to it
    strangers = [f"!stranger{i}:example.org" for i in range(20_000)]
    near, far = "!near:example.org", "!far:example.org"
    peer = await StandIn(tmp_path / "peer").start()
    try:
        peer.prefix_handlers[PREFIX + near] = json_handler(
            restricted_summary(near, [club, *strangers])
        )
        # alice's room is listed, but after more rooms than are looked at.
        peer.prefix_handlers[PREFIX + far] = json_handler(
            restricted_summary(far, [*strangers[:MAX_ALLOWED_ROOMS], club, *strangers])
        )
        body = await api.ok("GET", SUMMARY.format(quote(near)), token=alice.token,
                            params={"via": peer.server_name})
        validate_response("room_summary.yaml", "/room_summary/{roomIdOrAlias}", "get", 200,
                          body)
        assert body["room_id"] == near and "allowed_room_ids" not in body
        status, error = await api.request("GET", SUMMARY.format(quote(far)),
                                          token=alice.token, params={"via": peer.server_name})
        assert (status, error.get("errcode")) == (404, "M_NOT_FOUND")
    finally:
        await peer.stop()


async def test_a_federation_answer_serves_a_bounded_number_of_children(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    room = await shared_room(peers, peer_http)
    api, alice = room.api, room.alice
    # Children first in the space's order that this server does not hold count to the bound.
    for i in range(MAX_SERVED_CHILDREN):
        await add_child(api, alice, room.room_id, f"!absent{i}:example.org", "example.org",
                        order=f"{i:03d}")
    held = await api.create_room(alice, preset="public_chat")
    await add_child(api, alice, room.room_id, held, room.a.name, order="999")

    body = await room.ok("GET", f"/hierarchy/{room.room}")
    validate_ss_response("space_hierarchy.yaml", "/hierarchy/{roomId}", "get", 200, body)
    assert len(body["room"]["children_state"]) == MAX_SERVED_CHILDREN + 1
    assert body["children"] == [] and body["inaccessible_children"] == []
    # Within the bound the same child is served.
    await add_child(api, alice, room.room_id, held, room.a.name, order="000")
    body = await room.ok("GET", f"/hierarchy/{room.room}")
    assert [c["room_id"] for c in body["children"]] == [held]


def crowded_space(room_id: str, children: int) -> dict[str, Any]:
    """A peer's answer about a space: as many child events as it likes, in itself and in each
    of `children` child summaries."""
    def summary(rid: str) -> dict[str, Any]:
        return {"room_id": rid, "num_joined_members": 1, "join_rule": "public",
                "children_state": [{
                    "type": "m.space.child", "state_key": f"!c{i}:example.org",
                    "sender": "@a:example.org", "origin_server_ts": i,
                    "content": {"via": ["example.org"]},
                } for i in range(MAX_CHILDREN_STATE + 10)]}
    return {"room": summary(room_id), "inaccessible_children": [],
            "children": [summary(f"!sub{i}:example.org") for i in range(children)]}


async def test_the_cache_of_peers_answers_holds_a_bounded_number_of_child_events(
    peers: Peers, peer_http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Each answer is cut to MAX_SERVED_CHILDREN summaries of MAX_CHILDREN_STATE children, and
    the answers kept hold at most MAX_CACHED_CHILDREN child events: past that, the oldest
    answer goes, and the peer is asked again."""
    a = await peers.new("a")
    api = a.api(peer_http)
    alice = await api.register("alice")
    per_answer = (MAX_SERVED_CHILDREN + 1) * MAX_CHILDREN_STATE
    spaces = [f"!space{i}:example.org" for i in range(MAX_CACHED_CHILDREN // per_answer + 1)]
    peer = await StandIn(tmp_path / "peer").start()
    try:
        for space in spaces:
            peer.prefix_handlers[PREFIX + space] = json_handler(
                crowded_space(space, MAX_SERVED_CHILDREN + 5)
            )

        async def summarise(space: str) -> None:
            body = await api.ok("GET", SUMMARY.format(quote(space)), token=alice.token,
                                params={"via": peer.server_name})
            assert body["room_id"] == space

        await summarise(spaces[0])
        await summarise(spaces[0])
        assert peer.hits(PREFIX + spaces[0]) == 1  # the answer was kept
        for space in spaces[1:]:
            await summarise(space)
        await summarise(spaces[-1])
        assert peer.hits(PREFIX + spaces[-1]) == 1  # the newest answer is kept
        await summarise(spaces[0])
        assert peer.hits(PREFIX + spaces[0]) == 2  # the oldest went to keep within the bound
    finally:
        await peer.stop()


async def test_one_walk_asks_other_servers_a_bounded_number_of_times(
    peers: Peers, peer_http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A server that refuses is asked again about the next child (a refusal is about a room,
    not the server), but one walk asks no more than `MAX_ASKS` times in all."""
    a = await peers.new("a")
    api = a.api(peer_http)
    alice = await api.register("alice")
    peer = await StandIn(tmp_path / "peer").start()
    try:
        peer.prefix_handlers[PREFIX] = json_handler(
            {"errcode": "M_NOT_FOUND", "error": "no"}, status=404
        )
        space = await api.create_room(alice, preset="public_chat",
                                      creation_content={"type": "m.space"})
        for i in range(MAX_ASKS + 5):
            await add_child(api, alice, space, f"!hidden{i}:example.org", peer.server_name)
        body = await api.ok("GET", f"/_matrix/client/v1/rooms/{quote(space)}/hierarchy",
                            token=alice.token)
        assert [r["room_id"] for r in body["rooms"]] == [space]
        assert sum(1 for r in peer.requests if r.path.startswith(PREFIX)) == MAX_ASKS
    finally:
        await peer.stop()
