"""The published room directory (/publicRooms, /directory/list/room) and the user directory."""

from __future__ import annotations

from typing import Any

from tests.bad_input import assert_sane, bodies, collect, send_body
from tests.helpers import MatrixApi, User, validate_response

VISIBILITY = "/directory/list/room/{roomId}"


def ids(body: dict[str, Any]) -> list[str]:
    return [r["room_id"] for r in body["chunk"]]


async def public_rooms(api: MatrixApi, user: User, **body: Any) -> dict[str, Any]:
    result: dict[str, Any] = await api.ok("POST", "publicRooms", json=body, token=user.token)
    validate_response("list_public_rooms.yaml", "/publicRooms", "post", 200, result)
    return result


async def test_public_rooms_are_listed_with_their_details(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room = await api.create_room(
        alice, visibility="public", preset="public_chat", name="Cheese", topic="Tasty cheese",
        room_alias_name="cheese",
    )
    await api.join(bob, room)
    private = await api.create_room(alice, name="Secret")
    status, body = await api.request("GET", "publicRooms")  # no access token needed
    assert status == 200
    validate_response("list_public_rooms.yaml", "/publicRooms", "get", 200, body)
    assert ids(body) == [room]
    assert private not in ids(body)
    [entry] = body["chunk"]
    server = alice.user_id.split(":", 1)[1]
    assert entry == {
        "room_id": room, "name": "Cheese", "topic": "Tasty cheese",
        "canonical_alias": f"#cheese:{server}", "num_joined_members": 2,
        "world_readable": False, "guest_can_join": False, "join_rule": "public",
    }
    assert body["total_room_count_estimate"] == 1


async def test_filter_by_search_term_and_room_type(api: MatrixApi) -> None:
    alice = await api.register("alice")
    cheese = await api.create_room(alice, visibility="public", name="Cheese", topic="Brie")
    wine = await api.create_room(
        alice, visibility="public", name="Wine", room_alias_name="vino",
        creation_content={"type": "m.space"},
    )
    for term, expected in [
        ("chee", [cheese]), ("BRIE", [cheese]), ("vino", [wine]), ("beer", []), ("%", []),
    ]:
        body = await public_rooms(api, alice, filter={"generic_search_term": term})
        assert ids(body) == expected, term
    body = await public_rooms(api, alice, filter={"room_types": ["m.space"]})
    assert ids(body) == [wine]
    body = await public_rooms(api, alice, filter={"room_types": [None]})
    assert ids(body) == [cheese]
    assert (await public_rooms(api, alice, third_party_instance_id="irc"))["chunk"] == []
    body = await public_rooms(api, alice, include_all_networks=True)
    assert sorted(ids(body)) == sorted([cheese, wine])


async def test_pagination(api: MatrixApi) -> None:
    alice = await api.register("alice")
    rooms = [await api.create_room(alice, visibility="public", name=f"r{i}") for i in range(3)]
    seen: list[str] = []
    body = await public_rooms(api, alice, limit=1)
    assert "prev_batch" not in body
    while True:
        assert body["total_room_count_estimate"] == 3
        seen += ids(body)
        if "next_batch" not in body:
            break
        body = await public_rooms(api, alice, limit=1, since=body["next_batch"])
        assert "prev_batch" in body
    assert sorted(seen) == sorted(rooms)
    back = await public_rooms(api, alice, limit=1, since=body["prev_batch"])
    assert ids(back) == [seen[1]]
    status, got = await api.request("GET", "publicRooms", params={"limit": "2"})
    assert (status, len(got["chunk"]), "next_batch" in got) == (200, 2, True)
    for bad in ({"since": "zzz"}, {"limit": "many"}, {"server": "not a server name"}):
        status, got = await api.request("GET", "publicRooms", params=bad)
        assert (status, got["errcode"]) == (400, "M_INVALID_PARAM"), bad


async def test_public_rooms_post_errors(api: MatrixApi) -> None:
    alice = await api.register("alice")
    cases = [
        ({"limit": "1"}, "M_BAD_JSON"), ({"filter": []}, "M_BAD_JSON"),
        ({"filter": {"room_types": "m.space"}}, "M_BAD_JSON"),
        ({"filter": {"generic_search_term": 1}}, "M_BAD_JSON"),
        ({"include_all_networks": True, "third_party_instance_id": "irc"}, "M_INVALID_PARAM"),
        ({"since": "o-1"}, "M_INVALID_PARAM"),
    ]
    for json, errcode in cases:
        status, body = await api.request("POST", "publicRooms", json=json, token=alice.token)
        assert (status, body["errcode"]) == (400, errcode), json
    status, body = await api.request("POST", "publicRooms", json={})
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")


async def test_visibility_get_and_put_permissions(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    carol = await api.register("carol")
    room = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room)
    path = f"directory/list/room/{room}"
    body = await api.ok("GET", path)
    validate_response("list_public_rooms.yaml", VISIBILITY, "get", 200, body)
    assert body == {"visibility": "private"}
    for user in (bob, carol):  # a member without power, and a stranger
        status, body = await api.request(
            "PUT", path, json={"visibility": "public"}, token=user.token
        )
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    put = await api.ok("PUT", path, json={"visibility": "public"}, token=alice.token)
    validate_response("list_public_rooms.yaml", VISIBILITY, "put", 200, put)
    assert (await api.ok("GET", path)) == {"visibility": "public"}
    assert room in ids(await public_rooms(api, carol))
    # Power over the canonical alias is what counts: give it to bob.
    levels = await api.ok("GET", f"rooms/{room}/state/m.room.power_levels", token=alice.token)
    levels["users"] = {**levels.get("users", {}), bob.user_id: 50}
    await api.ok("PUT", f"rooms/{room}/state/m.room.power_levels", json=levels,
                 token=alice.token)
    await api.ok("PUT", path, json={"visibility": "private"}, token=bob.token)
    assert room not in ids(await public_rooms(api, carol))
    await api.ok("PUT", path, json={}, token=alice.token)  # visibility defaults to public
    assert (await api.ok("GET", path)) == {"visibility": "public"}
    unknown = "!unknown:" + alice.user_id.split(":", 1)[1]
    for method in ("GET", "PUT"):
        status, body = await api.request(
            method, f"directory/list/room/{unknown}", json={}, token=alice.token
        )
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND"), method
    for json, errcode in [({"visibility": "hidden"}, "M_INVALID_PARAM"),
                          ({"visibility": 1}, "M_BAD_JSON")]:
        status, body = await api.request("PUT", path, json=json, token=alice.token)
        assert (status, body["errcode"]) == (400, errcode)
    status, body = await api.request("GET", "directory/list/room/nonsense")
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")


async def search_users(api: MatrixApi, user: User, term: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = await api.ok(
        "POST", "user_directory/search", json={"search_term": term, **extra}, token=user.token
    )
    validate_response("users.yaml", "/user_directory/search", "post", 200, body)
    return body


async def test_user_directory_finds_room_mates_and_public_room_members(api: MatrixApi) -> None:
    alice, bob, carol, dave, eve = [
        await api.register(n) for n in ("alice", "bobby", "carol", "dave", "eve")
    ]
    await api.ok("PUT", f"profile/{bob.user_id}/displayname", json={"displayname": "Bob Smith"},
                 token=bob.token)
    shared = await api.create_room(alice, preset="private_chat", invite=[bob.user_id])
    await api.join(bob, shared)
    public = await api.create_room(carol, preset="public_chat")
    private = await api.create_room(dave, preset="private_chat", invite=[eve.user_id])
    await api.join(eve, private)
    assert public and private
    body = await search_users(api, alice, "SMITH")
    assert body == {
        "results": [{"user_id": bob.user_id, "display_name": "Bob Smith"}], "limited": False
    }
    assert [r["user_id"] for r in (await search_users(api, alice, "carol"))["results"]] == [
        carol.user_id
    ]
    assert (await search_users(api, alice, "dave"))["results"] == []  # shares nothing
    assert (await search_users(api, alice, "eve"))["results"] == []
    assert [r["user_id"] for r in (await search_users(api, eve, "dave"))["results"]] == [
        dave.user_id
    ]
    body = await search_users(api, alice, ":", limit=1)
    assert (len(body["results"]), body["limited"]) == (1, True)
    assert (await search_users(api, alice, "%"))["results"] == []


async def test_user_directory_errors(api: MatrixApi) -> None:
    alice = await api.register("alice")
    for json, errcode in [({}, "M_MISSING_PARAM"), ({"search_term": 5}, "M_BAD_JSON"),
                          ({"search_term": "a", "limit": "x"}, "M_BAD_JSON"), ([], "M_BAD_JSON")]:
        status, body = await api.request(
            "POST", "user_directory/search", json=json, token=alice.token
        )
        assert (status, body["errcode"]) == (400, errcode), json
    status, body = await api.request("POST", "user_directory/search", json={"search_term": "a"})
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")


async def test_write_endpoints_survive_arbitrary_bodies(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room = await api.create_room(alice, preset="public_chat")
    endpoints = [("POST", "publicRooms"), ("PUT", f"directory/list/room/{room}"),
                 ("POST", "user_directory/search")]
    for kind, value in collect(bodies):
        for method, path in endpoints:
            status, body = await send_body(api, method, path, alice.token, kind, value)
            assert_sane(status, body, (path, value))
