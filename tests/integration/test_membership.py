"""Membership over HTTP: join, invite, leave, forget, kick, ban, unban, member lists, aliases."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.conftest import RunningServer
from tests.helpers import MatrixApi, User


async def post(api: MatrixApi, user: User, path: str, **body: Any) -> tuple[int, Any]:
    return await api.request("POST", path, json=body, token=user.token)


async def joined_rooms(api: MatrixApi, user: User) -> list[str]:
    result: list[str] = (await api.ok("GET", "joined_rooms", token=user.token))["joined_rooms"]
    return result


async def membership_of(api: MatrixApi, viewer: User, room: str, user: User) -> str:
    content = await api.ok(
        "GET", f"rooms/{room}/state/m.room.member/{user.user_id}", token=viewer.token
    )
    result: str = content["membership"]
    return result


def alias_path(alias: str) -> str:
    return f"directory/room/{quote(alias)}"


async def test_join_public_room_by_id_and_by_alias(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    carol = await api.register("carol")
    room = await api.create_room(alice, preset="public_chat", room_alias_name="hall")
    status, body = await post(api, bob, f"join/{room}")
    assert (status, body) == (200, {"room_id": room})
    status, body = await post(api, carol, f"join/{quote('#hall:' + api_server(alice))}")
    assert (status, body) == (200, {"room_id": room})
    assert await joined_rooms(api, carol) == [room]
    assert await membership_of(api, alice, room, bob) == "join"
    # /rooms/{id}/join is the same operation and is idempotent for a joined user.
    assert await post(api, bob, f"rooms/{room}/join") == (200, {"room_id": room})


def api_server(user: User) -> str:
    return user.user_id.split(":", 1)[1]


async def member_event(api: MatrixApi, viewer: User, room: str, user: User) -> dict[str, Any]:
    event: dict[str, Any] = await api.ok(
        "GET", f"rooms/{room}/state/m.room.member/{user.user_id}", token=viewer.token,
        params={"format": "event"},
    )
    return event


async def test_joining_again_creates_no_event(api: MatrixApi) -> None:
    """Issue 13: a join that would repeat the member event (same content) is the existing
    event, as Synapse answers; one that changes it (a reason) is a new event."""
    alice, bob = await api.register("alice"), await api.register("bob")
    room = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room)
    joined = await member_event(api, alice, room, bob)
    since = (await api.sync(alice))["next_batch"]
    for path in (f"join/{room}", f"rooms/{room}/join"):
        assert await post(api, bob, path) == (200, {"room_id": room})
    assert (await member_event(api, alice, room, bob))["event_id"] == joined["event_id"]
    sync = await api.sync(alice, since=since, timeout=0)
    assert room not in sync.get("rooms", {}).get("join", {})  # nothing new in the room
    assert (await post(api, bob, f"join/{room}", reason="again"))[0] == 200
    rejoined = await member_event(api, alice, room, bob)
    assert rejoined["event_id"] != joined["event_id"]
    assert rejoined["content"] == {**joined["content"], "reason": "again"}


async def test_join_keeps_the_clients_content(api: MatrixApi) -> None:
    """Issue 13: `POST /join/{roomIdOrAlias}` keeps its body in the member event (Sytest and
    Complement "can join a room with custom content"), except what is a request parameter or
    the server's to say; `/rooms/{roomId}/join` keeps only the reason (as in Synapse)."""
    alice, bob, carol = [await api.register(n) for n in ("alice", "bob", "carol")]
    await api.ok("PUT", f"profile/{bob.user_id}/displayname", json={"displayname": "Bob"},
                 token=bob.token)
    room = await api.create_room(alice, preset="public_chat", room_alias_name="custom")
    status, body = await post(
        api, bob, f"join/{quote('#custom:' + api_server(alice))}", reason="hello", foo="bar",
        nested={"a": [1, 2]}, membership="leave",
        third_party_signed={"sender": alice.user_id, "mxid": bob.user_id, "token": "t",
                            "signatures": {}},
        join_authorised_via_users_server=alice.user_id,
    )
    assert (status, body) == (200, {"room_id": room}), body
    assert (await member_event(api, alice, room, bob))["content"] == {
        "membership": "join", "displayname": "Bob", "reason": "hello", "foo": "bar",
        "nested": {"a": [1, 2]},
    }
    # A per-room display name over the profile's.
    assert (await post(api, bob, f"join/{room}", displayname="Bobby"))[0] == 200
    assert (await member_event(api, alice, room, bob))["content"] == {
        "membership": "join", "displayname": "Bobby",
    }
    assert (await post(api, carol, f"rooms/{room}/join", reason="hi", foo="bar"))[0] == 200
    assert (await member_event(api, alice, room, carol))["content"] == {
        "membership": "join", "displayname": "carol", "reason": "hi",
    }
    status, body = await post(api, carol, f"join/{room}", reason=5)
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")


async def test_join_unknown_room_and_alias(api: MatrixApi) -> None:
    bob = await api.register("bob")
    status, body = await post(api, bob, f"join/{quote('#nowhere:' + api_server(bob))}")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await post(api, bob, "join/!nope:" + api_server(bob))
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await post(api, bob, "join/not-a-room")
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")


async def test_private_room_needs_an_invite(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room = await api.create_room(alice, preset="private_chat")
    status, body = await post(api, bob, f"join/{room}")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")

    assert await post(api, alice, f"rooms/{room}/invite", user_id=bob.user_id) == (200, {})
    assert await membership_of(api, alice, room, bob) == "invite"
    await api.join(bob, room)
    assert await joined_rooms(api, bob) == [room]


async def test_an_invite_to_a_room_everyone_else_left_is_rejected(api: MatrixApi) -> None:
    """The room lives here with nobody joined: the rejection is this server's own event."""
    alice, bob = await api.register("alice"), await api.register("bob")
    room = await api.create_room(alice, preset="private_chat", invite=[bob.user_id])
    assert (await post(api, alice, f"rooms/{room}/leave"))[0] == 200
    since = (await api.sync(bob))["next_batch"]
    assert room in (await api.sync(bob))["rooms"]["invite"]

    assert (await post(api, bob, f"rooms/{room}/leave"))[0] == 200
    rooms = (await api.sync(bob, since=since))["rooms"]
    assert room not in rooms["invite"]
    assert room in rooms["leave"]


async def test_invite_validates_its_body(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room = await api.create_room(alice)
    status, body = await post(api, alice, f"rooms/{room}/invite")
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")
    status, body = await post(api, alice, f"rooms/{room}/invite", user_id=5)
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")
    status, body = await post(api, alice, f"rooms/{room}/invite", user_id="bob")
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")


async def test_leave_then_forget(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room)

    status, body = await post(api, bob, f"rooms/{room}/forget")
    assert (status, body["errcode"]) == (400, "M_UNKNOWN")

    assert await post(api, bob, f"rooms/{room}/leave") == (200, {})
    assert await joined_rooms(api, bob) == []
    assert await membership_of(api, alice, room, bob) == "leave"
    assert await post(api, bob, f"rooms/{room}/forget") == (200, {})
    sync = await api.sync(bob)
    assert room not in sync.get("rooms", {}).get("leave", {})


async def test_kick_needs_power(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    carol = await api.register("carol")
    room = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room)
    await api.join(carol, room)

    status, body = await post(api, bob, f"rooms/{room}/kick", user_id=carol.user_id)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    assert await membership_of(api, alice, room, carol) == "join"

    status, body = await post(
        api, alice, f"rooms/{room}/kick", user_id=carol.user_id, reason="spam"
    )
    assert (status, body) == (200, {})
    kicked = await api.ok(
        "GET", f"rooms/{room}/state/m.room.member/{carol.user_id}", token=alice.token
    )
    assert kicked == {"membership": "leave", "reason": "spam"}
    assert await joined_rooms(api, carol) == []

    # The auth rules would allow it, but the endpoint refuses to kick someone not in the room.
    status, body = await post(api, alice, f"rooms/{room}/kick", user_id=carol.user_id)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await post(api, alice, f"rooms/!nope:{api_server(alice)}/kick",
                              user_id=carol.user_id)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def test_ban_unban_and_rejoin(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room = await api.create_room(alice, preset="private_chat", invite=[bob.user_id])
    await api.join(bob, room)

    status, body = await post(api, bob, f"rooms/{room}/ban", user_id=alice.user_id)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    assert await post(api, alice, f"rooms/{room}/ban", user_id=bob.user_id) == (200, {})
    assert await membership_of(api, alice, room, bob) == "ban"
    status, body = await post(api, bob, f"join/{room}")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await post(api, alice, f"rooms/{room}/invite", user_id=bob.user_id)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")

    assert await post(api, alice, f"rooms/{room}/unban", user_id=bob.user_id) == (200, {})
    assert await membership_of(api, alice, room, bob) == "leave"
    status, body = await post(api, bob, f"join/{room}")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")  # still invite-only
    await api.invite(alice, room, bob)
    await api.join(bob, room)
    assert await joined_rooms(api, bob) == [room]


async def test_unban_of_a_user_who_is_not_banned(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room = await api.create_room(alice)
    status, body = await post(api, alice, f"rooms/{room}/unban", user_id=bob.user_id)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_member_events_sent_as_state_take_the_membership_paths(api: MatrixApi) -> None:
    """PUT /state/m.room.member/{userId} does what the matching endpoint does, with the
    endpoint's checks, and keeps the client's content."""
    alice, bob, carol, dan = [await api.register(n) for n in ("alice", "bob", "carol", "dan")]
    room = await api.create_room(alice, preset="private_chat")

    async def put(user: User, target: User, content: dict[str, Any]) -> tuple[int, Any]:
        return await api.request(
            "PUT", f"rooms/{room}/state/m.room.member/{quote(target.user_id)}",
            json=content, token=user.token,
        )

    status, body = await put(alice, bob, {"membership": "invite", "reason": "hi"})
    assert status == 200 and body["event_id"].startswith("$"), body
    assert await membership_of(api, alice, room, bob) == "invite"
    status, body = await put(alice, bob, {"membership": "join"})
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")  # nobody joins for another
    assert (await put(bob, bob, {"membership": "join", "displayname": "B"}))[0] == 200
    assert await api.ok("GET", f"rooms/{room}/state/m.room.member/{quote(bob.user_id)}",
                        token=alice.token) == {"membership": "join", "displayname": "B"}
    # A leave of someone else is a kick, or an unban of a banned user: with their checks.
    status, body = await put(alice, carol, {"membership": "leave"})
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")  # Carol is not in the room
    assert (await put(alice, bob, {"membership": "leave", "reason": "out"}))[0] == 200
    assert await membership_of(api, alice, room, bob) == "leave"
    assert (await put(alice, dan, {"membership": "ban"}))[0] == 200
    assert await membership_of(api, alice, room, dan) == "ban"
    assert (await put(alice, dan, {"membership": "leave"}))[0] == 200
    assert await membership_of(api, alice, room, dan) == "leave"
    status, body = await put(bob, bob, {"membership": "join"})
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")  # invite-only, and not invited


async def test_members_and_joined_members(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    carol = await api.register("carol")
    await api.ok("PUT", f"profile/{bob.user_id}/displayname", json={"displayname": "Bobby"},
                 token=bob.token)
    room = await api.create_room(alice, preset="public_chat", invite=[carol.user_id])
    await api.join(bob, room)

    def members(chunk: list[dict[str, Any]]) -> dict[str, str]:
        return {e["state_key"]: e["content"]["membership"] for e in chunk}

    everyone = await api.ok("GET", f"rooms/{room}/members", token=alice.token)
    assert members(everyone["chunk"]) == {
        alice.user_id: "join", bob.user_id: "join", carol.user_id: "invite"
    }
    assert all(e["type"] == "m.room.member" for e in everyone["chunk"])
    invited = await api.ok("GET", f"rooms/{room}/members", token=alice.token,
                           params={"membership": "invite"})
    assert members(invited["chunk"]) == {carol.user_id: "invite"}
    not_joined = await api.ok("GET", f"rooms/{room}/members", token=alice.token,
                              params={"not_membership": "join"})
    assert members(not_joined["chunk"]) == {carol.user_id: "invite"}

    joined = await api.ok("GET", f"rooms/{room}/joined_members", token=bob.token)
    assert set(joined["joined"]) == {alice.user_id, bob.user_id}
    assert joined["joined"][bob.user_id]["display_name"] == "Bobby"

    outsider = await api.register("dave")
    status, body = await api.request("GET", f"rooms/{room}/members", token=outsider.token)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await api.request("GET", f"rooms/{room}/joined_members", token=outsider.token)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_aliases_put_get_delete(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room)
    server = api_server(alice)
    alias = f"#den:{server}"

    assert await api.request(
        "PUT", alias_path(alias), json={"room_id": room}, token=alice.token
    ) == (200, {})
    assert (await api.ok("GET", alias_path(alias)))["room_id"] == room
    status, body = await api.request(
        "PUT", alias_path(alias), json={"room_id": room}, token=bob.token
    )
    assert (status, body["errcode"]) == (409, "M_UNKNOWN")
    listed = await api.ok("GET", f"rooms/{room}/aliases", token=bob.token)
    assert listed == {"aliases": [alias]}

    status, body = await api.request("DELETE", alias_path(alias), token=bob.token)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    assert await api.request("DELETE", alias_path(alias), token=alice.token) == (200, {})
    status, body = await api.request("GET", alias_path(alias))
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await api.request("DELETE", alias_path(alias), token=alice.token)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    assert await api.ok("GET", f"rooms/{room}/aliases", token=bob.token) == {"aliases": []}


async def test_room_admins_delete_aliases_others_made(api: MatrixApi) -> None:
    """Issue 13: whoever may change the room's `m.room.canonical_alias` (joined, with its
    power level) may delete an alias of the room someone else made, as in Synapse; a member
    without that power, or a former admin who left, may not."""
    alice, bob, carol = [await api.register(n) for n in ("alice", "bob", "carol")]
    room = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room)
    await api.join(carol, room)
    power = await api.ok("GET", f"rooms/{room}/state/m.room.power_levels", token=alice.token)
    power["users"][bob.user_id] = 50  # the canonical alias level public_chat sets
    await api.ok("PUT", f"rooms/{room}/state/m.room.power_levels", json=power,
                 token=alice.token)
    server = api_server(alice)
    for name in ("one", "two"):
        await api.ok("PUT", alias_path(f"#{name}:{server}"), json={"room_id": room},
                     token=carol.token)
    assert await api.request("DELETE", alias_path(f"#one:{server}"), token=bob.token) == (
        200, {}
    )
    status, body = await api.request("GET", alias_path(f"#one:{server}"))
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")

    dan = await api.register("dan")
    await api.join(dan, room)
    status, body = await api.request("DELETE", alias_path(f"#two:{server}"), token=dan.token)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    await post(api, bob, f"rooms/{room}/leave")
    status, body = await api.request("DELETE", alias_path(f"#two:{server}"), token=bob.token)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    assert (await api.ok("GET", alias_path(f"#two:{server}")))["room_id"] == room


async def test_canonical_alias_must_point_to_the_room(api: MatrixApi) -> None:
    """Issue 13 (room_state.yaml 400): an `m.room.canonical_alias` whose `alias` or a new
    `alt_aliases` entry does not point to the room (or exists nowhere) is 400 M_BAD_ALIAS; a
    malformed one M_INVALID_PARAM. Only what the event adds is checked, as in Synapse."""
    alice = await api.register("alice")
    server = api_server(alice)
    room = await api.create_room(alice, room_alias_name="home")
    other = await api.create_room(alice, room_alias_name="elsewhere")
    home, elsewhere, nowhere = (f"#{n}:{server}" for n in ("home", "elsewhere", "nowhere"))
    await api.ok("PUT", alias_path(f"#second:{server}"), json={"room_id": room},
                 token=alice.token)

    async def put(content: dict[str, Any]) -> tuple[int, Any]:
        return await api.request("PUT", f"rooms/{room}/state/m.room.canonical_alias",
                                 json=content, token=alice.token)

    cases: list[tuple[dict[str, Any], str]] = [
        ({"alias": elsewhere}, "M_BAD_ALIAS"),
        ({"alias": nowhere}, "M_BAD_ALIAS"),
        ({"alias": home, "alt_aliases": [f"#second:{server}", elsewhere]}, "M_BAD_ALIAS"),
        ({"alias": home, "alt_aliases": [nowhere]}, "M_BAD_ALIAS"),
        ({"alias": "home"}, "M_INVALID_PARAM"),
        ({"alias": 7}, "M_INVALID_PARAM"),
        ({"alias": home, "alt_aliases": home}, "M_INVALID_PARAM"),
        ({"alias": home, "alt_aliases": ["#bad"]}, "M_INVALID_PARAM"),
    ]
    for content, errcode in cases:
        status, body = await put(content)
        assert (status, body["errcode"]) == (400, errcode), (content, body)
    assert await api.ok("GET", f"rooms/{room}/state/m.room.canonical_alias",
                        token=alice.token) == {"alias": home}

    assert (await put({"alias": home, "alt_aliases": [f"#second:{server}"]}))[0] == 200
    assert (await put({}))[0] == 200  # unpublishing needs nothing
    assert (await put({"alias": home, "alt_aliases": [f"#second:{server}"]}))[0] == 200
    # An alias deleted since it was published does not block editing the rest of the event.
    await api.ok("DELETE", alias_path(f"#second:{server}"), token=alice.token)
    status, body = await put({"alias": home, "alt_aliases": [f"#second:{server}"], "x": 1})
    assert status == 200, body
    # Another room's admin check comes first: a member without the power learns nothing.
    bob = await api.register("bob")
    await api.ok("PUT", f"rooms/{other}/state/m.room.join_rules",
                 json={"join_rule": "public"}, token=alice.token)
    await api.join(bob, other)
    status, body = await api.request("PUT", f"rooms/{other}/state/m.room.canonical_alias",
                                     json={"alias": nowhere}, token=bob.token)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_only_members_of_a_room_give_it_an_alias(
    api: MatrixApi, homeserver: RunningServer
) -> None:
    """Issue 22 item 8: an alias for a room one is not joined to (which would reveal the
    servers of its members to whoever resolves it) is refused; a joined member needs no
    power level for it, and a server admin need not be in the room."""
    alice, bob, mallory = [await api.register(n) for n in ("alice", "bob", "mallory")]
    room = await api.create_room(alice, preset="private_chat", room_alias_name="made")
    server = api_server(alice)
    assert (await api.ok("GET", alias_path(f"#made:{server}")))["room_id"] == room
    await api.invite(alice, room, bob)

    async def put(user: User, name: str) -> tuple[int, Any]:
        return await api.request(
            "PUT", alias_path(f"#{name}:{server}"), json={"room_id": room}, token=user.token
        )

    for user, name in ((mallory, "stranger"), (bob, "invited")):
        status, body = await put(user, name)
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), (name, body)
        status, body = await api.request("GET", alias_path(f"#{name}:{server}"))
        assert status == 404, body
    await api.join(bob, room)
    assert await put(bob, "member") == (200, {})  # power level 0: membership is enough
    await post(api, bob, f"rooms/{room}/leave")
    status, body = await put(bob, "left")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")

    # A server admin (as `register-user --admin` makes one), with a token issued since.
    assert homeserver.hs.db is not None
    await homeserver.hs.db.run(lambda c: c.execute(
        "UPDATE users SET is_admin = true WHERE user_id = $1", mallory.user_id
    ))
    login = await api.ok("POST", "login", json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "mallory"},
        "password": mallory.password,
    })
    assert await put(User(mallory.user_id, login["access_token"], ""), "admin") == (200, {})


async def test_alias_validation(api: MatrixApi) -> None:
    alice = await api.register("alice")
    room = await api.create_room(alice)
    cases = [
        (alias_path("#x:elsewhere.example"), {"room_id": room}, 400, "M_INVALID_PARAM"),
        (alias_path("nohash"), {"room_id": room}, 400, "M_INVALID_PARAM"),
        (alias_path(f"#x:{api_server(alice)}"), {}, 400, "M_BAD_JSON"),
        (alias_path(f"#x:{api_server(alice)}"), {"room_id": 1}, 400, "M_BAD_JSON"),
        (alias_path(f"#x:{api_server(alice)}"), {"room_id": f"!none:{api_server(alice)}"},
         404, "M_NOT_FOUND"),
    ]
    for path, body, status, errcode in cases:
        got_status, got = await api.request("PUT", path, json=body, token=alice.token)
        assert (got_status, got["errcode"]) == (status, errcode), (path, body, got)


async def test_room_aliases_needs_membership(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room = await api.create_room(alice)
    status, body = await api.request("GET", f"rooms/{room}/aliases", token=bob.token)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
