"""Another server's published room directory through this one (`GET`/`POST /publicRooms
?server=`, asked over federation `publicRooms`): two Moot servers list each other's rooms, and
a peer that is down, hangs or answers garbage costs the client a 502 or 504 with an errcode
within `REMOTE_TIMEOUT_S`, never a 500 or a hang; a malformed server name is a 400; a page
asked again soon is served from this server's short-lived copy."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from homeserver.services.directory import REMOTE_TIMEOUT_S
from tests.federation_helpers import StandIn, free_port, json_handler
from tests.federation_peers import Peers
from tests.helpers import MatrixApi, User, validate_response

PUBLIC_ROOMS = "/_matrix/federation/v1/publicRooms"


def ids(body: dict[str, Any]) -> list[str]:
    return [r["room_id"] for r in body["chunk"]]


async def listing(
    api: MatrixApi, user: User, server: str, method: str = "GET", **options: Any
) -> tuple[int, dict[str, Any]]:
    """A page of ``server``'s directory asked of ``api``'s server (GET: ``options`` are the
    query string; POST: the body)."""
    if method == "GET":
        return await api.request("GET", "publicRooms", token=user.token,
                                 params={"server": server, **options})
    return await api.request("POST", "publicRooms", token=user.token, json=options,
                             params={"server": server})


async def test_a_user_lists_and_searches_another_moot_server_s_directory(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    a, b = await peers.new("a"), await peers.new("b")
    api, bapi = a.api(peer_http), b.api(peer_http)
    alice = await api.register("alice")
    bob = await bapi.register("bob")
    rooms = [
        await bapi.create_room(bob, visibility="public", name=f"Quokka meetup {i}",
                               topic="Marsupials")
        for i in range(3)
    ]
    wombats = await bapi.create_room(bob, visibility="public", name="Wombat burrow")
    await bapi.create_room(bob, name="Quokka secrets")  # not published
    await api.create_room(alice, visibility="public", name="Quokka on a")  # a's own

    status, body = await listing(api, alice, b.name)
    assert status == 200, body
    validate_response("list_public_rooms.yaml", "/publicRooms", "get", 200, body)
    assert sorted(ids(body)) == sorted([*rooms, wombats])
    assert {r["name"] for r in body["chunk"]} >= {"Quokka meetup 0", "Wombat burrow"}

    # B's pagination tokens go back to B, page by page.
    seen: list[str] = []
    status, page = await listing(api, alice, b.name, limit="3")
    while True:
        assert status == 200 and len(page["chunk"]) <= 3, page
        seen += ids(page)
        if "next_batch" not in page:
            break
        status, page = await listing(api, alice, b.name, limit="3", since=page["next_batch"])
    assert sorted(seen) == sorted([*rooms, wombats])

    status, found = await listing(api, alice, b.name, "POST",
                                  filter={"generic_search_term": "quokka"}, limit=10)
    assert status == 200, found
    validate_response("list_public_rooms.yaml", "/publicRooms", "post", 200, found)
    assert sorted(ids(found)) == sorted(rooms)
    status, first = await listing(api, alice, b.name, "POST",
                                  filter={"generic_search_term": "quokka"}, limit=2)
    assert (status, len(first["chunk"]), "next_batch" in first) == (200, 2, True)
    status, rest = await listing(api, alice, b.name, "POST", since=first["next_batch"],
                                 filter={"generic_search_term": "quokka"}, limit=2)
    assert sorted(ids(first) + ids(rest)) == sorted(rooms), rest
    status, none = await listing(api, alice, b.name, "POST", third_party_instance_id="irc")
    assert (status, none["chunk"]) == (200, [])

    # This server's own name is its own directory.
    status, own = await listing(api, alice, a.name, "POST",
                                filter={"generic_search_term": "quokka"})
    assert [r["name"] for r in own["chunk"]] == ["Quokka on a"]


async def test_bad_server_names_and_options_are_refused_before_asking_anyone(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    a = await peers.new("a")
    api = a.api(peer_http)
    alice = await api.register("alice")
    for server in ("not a server", "host:port", "[::1", "exa_mple.org/x"):
        for method in ("GET", "POST"):
            status, body = await listing(api, alice, server, method)
            assert (status, body.get("errcode")) == (400, "M_INVALID_PARAM"), (server, method)
    status, body = await listing(api, alice, "elsewhere.example", "POST",
                                 include_all_networks=True, third_party_instance_id="irc")
    assert (status, body.get("errcode")) == (400, "M_INVALID_PARAM")
    # Asking another server needs an access token, even for a GET.
    status, body = await api.request("GET", "publicRooms",
                                     params={"server": "elsewhere.example"})
    assert (status, body.get("errcode")) == (401, "M_MISSING_TOKEN")


async def test_a_server_that_is_down_or_unknown_is_a_quick_502_or_a_504(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    a = await peers.new("a")
    api = a.api(peer_http)
    alice = await api.register("alice")
    nobody = f"127.0.0.1:{free_port()}"  # nothing listens there
    # A name nobody has is a quick 502 where the resolver says so at once; a machine whose
    # resolver cannot be reached makes it a 504 after REMOTE_TIMEOUT_S instead.
    for server, answers in ((nobody, {502}), ("127.0.0.1:99999", {502}),
                            ("no-such-host.invalid", {502, 504})):
        for method in ("GET", "POST"):
            started = time.monotonic()
            status, body = await listing(api, alice, server, method,
                                         **({} if method == "GET" else {"limit": 5}))
            assert status in answers and body.get("errcode") == "M_UNKNOWN", (server, body)
            assert time.monotonic() - started < (REMOTE_TIMEOUT_S if status == 502 else 15)


async def test_a_peer_answering_garbage_is_a_502_and_its_rooms_are_cut_to_the_spec(
    peers: Peers, peer_http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    a = await peers.new("a")
    api = a.api(peer_http)
    alice = await api.register("alice")
    peer = await StandIn(tmp_path / "peer").start()
    try:
        for answer, status_code in ((["not", "an", "object"], 200), ({"chunk": "rooms"}, 200),
                                    ({"errcode": "M_UNKNOWN"}, 500), ("<html>", 200)):
            peer.handlers[PUBLIC_ROOMS] = json_handler(answer, status=status_code)
            status, body = await listing(api, alice, peer.server_name)
            assert (status, body.get("errcode")) == (502, "M_UNKNOWN"), answer
        room = {"room_id": "!kept:example.org", "num_joined_members": 3, "name": "Kept",
                "world_readable": "yes", "guest_can_join": True, "secret": "x" * 100,
                "children_state": [{"type": "m.space.child"}]}
        peer.handlers[PUBLIC_ROOMS] = json_handler({
            "chunk": [room, {"room_id": "not a room"}, 7,
                      {**room, "room_id": "!second:example.org"},
                      {**room, "room_id": "!third:example.org"}],
            "next_batch": 5, "total_room_count_estimate": 3,
        })
        status, body = await listing(api, alice, peer.server_name, limit="2")
        assert status == 200, body
        validate_response("list_public_rooms.yaml", "/publicRooms", "get", 200, body)
        assert body == {
            "chunk": [
                {"room_id": rid, "num_joined_members": 3, "name": "Kept",
                 "world_readable": False, "guest_can_join": True}
                for rid in ("!kept:example.org", "!second:example.org")
            ],
            "total_room_count_estimate": 3,
        }
        asked = [r for r in peer.requests if r.path == PUBLIC_ROOMS][-1]
        assert asked.query["limit"] == "2" and "X-Matrix" in asked.headers["Authorization"]
    finally:
        await peer.stop()


async def test_a_peer_that_never_answers_is_a_504_in_bounded_time(
    peers: Peers, peer_http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    a = await peers.new("a")
    api = a.api(peer_http)
    alice = await api.register("alice")
    released = asyncio.Event()

    async def hang(request: web.Request) -> web.StreamResponse:
        await released.wait()
        return web.json_response({"chunk": []})

    peer = await StandIn(tmp_path / "peer").start()
    peer.handlers[PUBLIC_ROOMS] = hang
    try:
        started = time.monotonic()
        status, body = await listing(api, alice, peer.server_name, "POST",
                                     filter={"generic_search_term": "x"})
        elapsed = time.monotonic() - started
        assert (status, body.get("errcode")) == (504, "M_UNKNOWN"), body
        assert REMOTE_TIMEOUT_S - 1 < elapsed < 15, elapsed
    finally:
        released.set()
        await peer.stop()


async def test_a_page_asked_again_soon_is_not_asked_of_the_peer_again(
    peers: Peers, peer_http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    a = await peers.new("a")
    api = a.api(peer_http)
    alice = await api.register("alice")
    bob = await api.register("bob")
    peer = await StandIn(tmp_path / "peer").start()
    peer.handlers[PUBLIC_ROOMS] = json_handler(
        {"chunk": [{"room_id": "!r:example.org", "num_joined_members": 1}]}
    )
    try:
        for user in (alice, bob, alice):
            status, body = await listing(api, user, peer.server_name, limit="5")
            assert (status, ids(body)) == (200, ["!r:example.org"])
        assert peer.hits(PUBLIC_ROOMS) == 1
        await listing(api, alice, peer.server_name, limit="6")
        await listing(api, alice, peer.server_name, "POST", filter={"generic_search_term": "r"})
        assert peer.hits(PUBLIC_ROOMS) == 3
    finally:
        await peer.stop()
