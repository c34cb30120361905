"""Spaces across rooms and servers: restricted rooms in the hierarchy and in room summaries for
those their join rule admits, federation `GET /hierarchy/{roomId}` served (children and
inaccessible children as the asking server may see them) and used for children and summaries
of rooms only another server holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from tests.federation_helpers import StandIn, json_handler, validate_ss_response
from tests.federation_peers import Peers, eventually
from tests.helpers import MatrixApi, User, validate_response
from tests.shared_rooms import Room, shared_room
from tests.spaces import PREFIX, SUMMARY, add_child

HIERARCHY = "/_matrix/client/v1/rooms/{}/hierarchy"


def restricted_to(room_id: str) -> dict[str, Any]:
    return {"type": "m.room.join_rules", "state_key": "", "content": {
        "join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": room_id}],
    }}


async def hierarchy_ids(api: MatrixApi, user: User, space: str, **params: str) -> list[str]:
    body = await api.ok("GET", HIERARCHY.format(quote(space)), token=user.token, params=params)
    validate_response("space_hierarchy.yaml", "/rooms/{roomId}/hierarchy", "get", 200, body)
    return [r["room_id"] for r in body["rooms"]]


async def test_restricted_rooms_show_to_members_of_an_allowed_room(api: MatrixApi) -> None:
    alice, bob, carol = [await api.register(n) for n in ("alice", "bob", "carol")]
    space = await api.create_room(alice, preset="public_chat", name="Space",
                                  creation_content={"type": "m.space"})
    members_only = await api.create_room(alice, name="Members only",
                                         initial_state=[restricted_to(space)])
    await add_child(api, alice, space, members_only, "localhost")
    await api.ok("POST", f"join/{quote(space)}", token=bob.token, json={})

    assert await hierarchy_ids(api, bob, space) == [space, members_only]
    assert await hierarchy_ids(api, carol, space) == [space]  # in no allowed room

    body = await api.ok("GET", SUMMARY.format(quote(members_only)), token=bob.token)
    validate_response("room_summary.yaml", "/room_summary/{roomIdOrAlias}", "get", 200, body)
    assert (body["room_id"], body["join_rule"], body["name"]) == (
        members_only, "restricted", "Members only"
    )
    assert "membership" not in body and "allowed_room_ids" not in body
    status, error = await api.request("GET", SUMMARY.format(quote(members_only)),
                                      token=carol.token)
    assert (status, error["errcode"]) == (404, "M_NOT_FOUND")
    status, _ = await api.request("GET", SUMMARY.format(quote(members_only)))
    assert status == 404  # nobody unauthenticated is in the space


async def space_on_a(room: Room) -> dict[str, str]:
    """On a: a public space holding a public child, a restricted child (members of the space)
    and an invite-only child, all of a; the space is `room.room_id`, which Bob of b joined."""
    api, alice = room.api, room.alice
    rooms = {
        "public": await api.create_room(alice, preset="public_chat", name="Open"),
        "restricted": await api.create_room(alice, name="Members",
                                            initial_state=[restricted_to(room.room_id)]),
        "private": await api.create_room(alice, name="Secret"),
    }
    for order, child in enumerate(rooms.values()):
        await add_child(api, alice, room.room_id, child, room.a.name, order=str(order),
                        suggested=child == rooms["public"])
    return rooms


async def test_federation_hierarchy_answers_as_the_asking_server_may_see(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    room = await shared_room(peers, peer_http)
    children = await space_on_a(room)
    path = f"/hierarchy/{room.room}"
    body = await room.ok("GET", path)
    validate_ss_response("space_hierarchy.yaml", "/hierarchy/{roomId}", "get", 200, body)
    assert body["room"]["room_id"] == room.room_id
    assert [c["state_key"] for c in body["room"]["children_state"]] == list(children.values())
    # b has a user in the space, so the restricted child is open to it; the secret is not.
    assert [c["room_id"] for c in body["children"]] == [children["public"],
                                                        children["restricted"]]
    restricted = body["children"][1]
    assert restricted["allowed_room_ids"] == [room.room_id]
    assert body["inaccessible_children"] == [children["private"]]

    suggested = await room.ok("GET", path, query={"suggested_only": "true"})
    assert [c["room_id"] for c in suggested["children"]] == [children["public"]]
    assert suggested["inaccessible_children"] == []

    c = await peers.new("c")  # a server with nobody in the space
    status, answer = await room.ask("GET", path, asker=c)
    assert status == 200 and [r["room_id"] for r in answer["children"]] == [children["public"]]
    assert answer["inaccessible_children"] == [children["restricted"], children["private"]]
    status, answer = await room.ask("GET", f"/hierarchy/{quote(children['private'])}", asker=c)
    assert (status, answer["errcode"]) == (404, "M_NOT_FOUND")
    status, answer = await room.ask("GET", path, query={"suggested_only": "yes"})
    assert (status, answer["errcode"]) == (400, "M_INVALID_PARAM")


async def test_children_only_another_server_holds_come_from_it(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    room = await shared_room(peers, peer_http)
    children = await space_on_a(room)
    # On b: Bob's own space, whose child is a's space (b holds it) and a room of a's that b
    # does not hold, so b asks a about it and about the children under it.
    api_b, bob = room.api_b, room.bob
    top = await api_b.create_room(bob, preset="public_chat", name="Top",
                                  creation_content={"type": "m.space"})
    await add_child(api_b, bob, top, room.room_id, room.a.name, order="1")
    await add_child(api_b, bob, top, children["public"], room.a.name, order="2")
    # A grandchild under the public child, only a holds both.
    deep = await room.api.create_room(room.alice, preset="public_chat", name="Deep")
    await add_child(room.api, room.alice, children["public"], deep, room.a.name)

    async def b_holds_the_children() -> bool:
        state = await api_b.ok("GET", f"rooms/{room.room}/state", token=bob.token)
        return {e["state_key"] for e in state if e["type"] == "m.space.child"} == set(
            children.values()
        )

    await eventually(b_holds_the_children, "the space's children on b")
    ids = await hierarchy_ids(api_b, bob, top)
    # The public room is seen first as Top's own child, so it comes after the restricted one.
    assert ids == [top, room.room_id, children["restricted"], children["public"], deep]
    body = await api_b.ok("GET", HIERARCHY.format(quote(top)), token=bob.token)
    by_id = {r["room_id"]: r for r in body["rooms"]}
    assert by_id[children["public"]]["name"] == "Open"
    assert by_id[children["restricted"]]["join_rule"] == "restricted"
    assert [c["state_key"] for c in by_id[children["public"]]["children_state"]] == [deep]

    # Another user of b, in no room of a's: the restricted child is hidden from them.
    dave = await api_b.register("dave")
    ids = await hierarchy_ids(api_b, dave, top)
    assert children["restricted"] not in ids and children["public"] in ids

    # A summary of a room b does not hold, through the server named in `via`.
    summary = await api_b.ok("GET", SUMMARY.format(quote(deep)), token=bob.token,
                             params={"via": room.a.name})
    validate_response("room_summary.yaml", "/room_summary/{roomIdOrAlias}", "get", 200, summary)
    assert (summary["room_id"], summary["name"], summary["num_joined_members"]) == (
        deep, "Deep", 1
    )
    assert "children_state" not in summary
    elsewhere = await room.api.create_room(room.alice, preset="public_chat", name="Elsewhere",
                                           room_alias_name="elsewhere")
    status, error = await api_b.request("GET", SUMMARY.format(quote(elsewhere)),
                                        token=bob.token)
    assert (status, error["errcode"]) == (404, "M_NOT_FOUND")  # no `via`: nobody to ask
    # Through another server's alias: its directory names the servers to ask.
    by_alias = await api_b.ok("GET", SUMMARY.format(quote(f"#elsewhere:{room.a.name}")),
                              token=bob.token)
    assert (by_alias["room_id"], by_alias["name"]) == (elsewhere, "Elsewhere")
    status, error = await api_b.request(
        "GET", SUMMARY.format(quote(children["private"])), token=bob.token,
        params={"via": room.a.name},
    )
    assert (status, error["errcode"]) == (404, "M_NOT_FOUND")
    status, error = await api_b.request("GET", SUMMARY.format(quote(deep)), token=bob.token,
                                        params={"via": "not a server"})
    assert (status, error["errcode"]) == (400, "M_INVALID_PARAM")


async def test_other_servers_answers_are_checked_reused_and_bounded(
    peers: Peers, peer_http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A peer's summary reaches clients cut down to the spec's fields; an answer is reused by
    the next walk; a server that failed is not asked again in the same walk."""
    a = await peers.new("a")
    api = a.api(peer_http)
    alice = await api.register("alice")
    far = "!faraway:example.org"
    good, broken = (await StandIn(tmp_path / "good").start(),
                    await StandIn(tmp_path / "broken").start())
    try:
        good.prefix_handlers[PREFIX] = json_handler({
            "room": {"room_id": far, "num_joined_members": 2, "name": "Far", "evil": {"x": 1},
                     "join_rule": "public", "children_state": []},
            "children": [], "inaccessible_children": [],
        })
        broken.prefix_handlers[PREFIX] = json_handler({"errcode": "M_UNKNOWN"}, status=500)
        space = await api.create_room(alice, preset="public_chat",
                                      creation_content={"type": "m.space"})
        await add_child(api, alice, space, far, good.server_name, order="0")
        for i in range(12):
            await add_child(api, alice, space, f"!gone{i}:example.org", broken.server_name,
                            order=str(i + 1))

        for _ in range(2):
            body = await api.ok("GET", HIERARCHY.format(quote(space)), token=alice.token)
            validate_response("space_hierarchy.yaml", "/rooms/{roomId}/hierarchy", "get", 200,
                              body)
            assert [r["room_id"] for r in body["rooms"]] == [space, far]
            assert "evil" not in body["rooms"][1] and body["rooms"][1]["name"] == "Far"
        assert asked(good) == 1  # the second walk reused the answer
        assert asked(broken) == 2  # once per walk
    finally:
        await good.stop()
        await broken.stop()


def asked(server: StandIn) -> int:
    return sum(1 for r in server.requests if r.path.startswith(PREFIX))


async def test_a_space_one_is_invited_to_on_another_server_is_previewed(
    peers: Peers, peer_http: aiohttp.ClientSession
) -> None:
    a, b = await peers.new("a"), await peers.new("b")
    api_a, api_b = a.api(peer_http), b.api(peer_http)
    alice, bob, carol = (await api_a.register("alice"), await api_b.register("bob"),
                         await api_b.register("carol"))
    space = await api_a.create_room(alice, name="Private space",
                                    creation_content={"type": "m.space"})
    lobby = await api_a.create_room(alice, preset="public_chat", name="Lobby")
    await add_child(api_a, alice, space, lobby, a.name)
    await api_a.ok("POST", f"rooms/{quote(space)}/invite", json={"user_id": bob.user_id},
                   token=alice.token)

    async def invited() -> bool:
        sync = await api_b.ok("GET", "sync", token=bob.token, params={"timeout": "0"})
        return space in sync["rooms"]["invite"]

    await eventually(invited, "Bob's invite on b")
    assert await hierarchy_ids(api_b, bob, space) == [space, lobby]
    status, error = await api_b.request("GET", HIERARCHY.format(quote(space)), token=carol.token)
    assert (status, error["errcode"]) == (403, "M_FORBIDDEN")
