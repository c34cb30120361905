"""The endpoints added so that /versions may claim r0 and v1.1 (test_versions.py): room
upgrades, knocking, OpenID tokens, reporting, `admin/whois`, and the answers of features this
server does not offer (third-party networks and identifiers, TURN, SSO, URL previews)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp

from tests.conftest import RunningServer
from tests.helpers import MatrixApi, validate_response


async def state_event(api: MatrixApi, token: str, room_id: str, event_type: str) -> Any:
    return await api.ok("GET", f"rooms/{room_id}/state/{event_type}/", token=token)


async def test_room_upgrade(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    old = await api.create_room(alice, preset="public_chat", name="Tea", topic="Leaves",
                                room_version="10")
    await api.join(bob, old)
    status, body = await api.request("POST", f"rooms/{old}/upgrade",
                                     json={"new_version": "11"}, token=bob.token)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await api.request("POST", f"rooms/{old}/upgrade",
                                     json={"new_version": "nope"}, token=alice.token)
    assert (status, body["errcode"]) == (400, "M_UNSUPPORTED_ROOM_VERSION")

    body = await api.ok("POST", f"rooms/{old}/upgrade", json={"new_version": "11"},
                        token=alice.token)
    validate_response("room_upgrades.yaml", "/rooms/{roomId}/upgrade", "post", 200, body)
    new = body["replacement_room"]
    tombstone = await state_event(api, alice.token, old, "m.room.tombstone")
    assert tombstone["replacement_room"] == new
    create = await state_event(api, alice.token, new, "m.room.create")
    assert create["room_version"] == "11" and create["predecessor"]["room_id"] == old
    assert (await state_event(api, alice.token, new, "m.room.name"))["name"] == "Tea"
    assert (await state_event(api, alice.token, new, "m.room.topic"))["topic"] == "Leaves"
    join_rules = await state_event(api, alice.token, new, "m.room.join_rules")
    assert join_rules["join_rule"] == "public"
    power = await state_event(api, alice.token, old, "m.room.power_levels")
    assert power["events_default"] >= 50 and power["invite"] >= 50
    # Bob follows the tombstone; he can no longer talk in the old room.
    await api.join(bob, new)
    status, body = await api.request(
        "PUT", f"rooms/{old}/send/m.room.message/t1", json={"body": "x", "msgtype": "m.text"},
        token=bob.token,
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_an_admin_who_left_cannot_upgrade_the_room(api: MatrixApi) -> None:
    """Upgrading is an act in the room as it is now: a former admin, who may still read the
    room as it was when they left, gets 403 and no replacement room is made."""
    alice, bob = await api.register("alice"), await api.register("bob")
    room = await api.create_room(alice, preset="public_chat", room_version="11")
    await api.join(bob, room)
    levels = await state_event(api, alice.token, room, "m.room.power_levels")
    levels["users"][bob.user_id] = 100
    await api.ok("PUT", f"rooms/{room}/state/m.room.power_levels", json=levels,
                 token=alice.token)
    await api.ok("POST", f"rooms/{room}/leave", json={}, token=bob.token)
    before = await api.ok("GET", "joined_rooms", token=bob.token)
    status, body = await api.request("POST", f"rooms/{room}/upgrade",
                                     json={"new_version": "12"}, token=bob.token)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), body
    assert await api.ok("GET", "joined_rooms", token=bob.token) == before


async def test_upgrade_into_a_room_version_with_privileged_creators(api: MatrixApi) -> None:
    alice = await api.register("alice")
    old = await api.create_room(alice, room_version="11")
    new = (await api.ok("POST", f"rooms/{old}/upgrade", json={"new_version": "12"},
                        token=alice.token))["replacement_room"]
    power = await state_event(api, alice.token, new, "m.room.power_levels")
    assert alice.user_id not in power.get("users", {})
    await api.send_message(alice, new, "still in charge")


async def test_knock(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    knockable = await api.create_room(alice, room_version="10", initial_state=[
        {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}},
    ])
    body = await api.ok("POST", f"knock/{knockable}", json={"reason": "let me in"},
                        token=bob.token)
    validate_response("knocking.yaml", "/knock/{roomIdOrAlias}", "post", 200, body)
    assert body["room_id"] == knockable
    members = await api.ok("GET", f"rooms/{knockable}/members", token=alice.token)
    knock = next(e for e in members["chunk"] if e["state_key"] == bob.user_id)
    assert (knock["content"]["membership"], knock["content"]["reason"]) == ("knock", "let me in")

    private = await api.create_room(alice)
    status, body = await api.request("POST", f"knock/{private}", json={}, token=bob.token)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_openid_token_names_the_user_to_third_parties(
    api: MatrixApi, homeserver: RunningServer, http: aiohttp.ClientSession,
) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    body = await api.ok("POST", f"user/{alice.user_id}/openid/request_token", json={},
                        token=alice.token)
    validate_response("openid.yaml", "/user/{userId}/openid/request_token", "post", 200, body)
    assert body["matrix_server_name"] == homeserver.server_name
    status, refused = await api.request(
        "POST", f"user/{alice.user_id}/openid/request_token", json={}, token=bob.token
    )
    assert (status, refused["errcode"]) == (403, "M_FORBIDDEN")

    userinfo = f"https://127.0.0.1:{homeserver.hs.ports['federation']}" \
        "/_matrix/federation/v1/openid/userinfo"
    for token, expected in ((body["access_token"], 200), ("forged", 401)):
        async with http.get(userinfo, params={"access_token": token}, ssl=False) as resp:
            assert resp.status == expected
            answer = await resp.json()
        if expected == 200:
            assert answer == {"sub": alice.user_id}
        else:
            assert answer["errcode"] == "M_UNKNOWN_TOKEN"


async def test_whois(api: MatrixApi, homeserver: RunningServer) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    body = await api.ok("GET", f"admin/whois/{alice.user_id}", token=alice.token)
    validate_response("admin.yaml", "/v3/admin/whois/{userId}", "get", 200, body)
    assert body["user_id"] == alice.user_id and alice.device_id in body["devices"]
    status, body = await api.request("GET", f"admin/whois/{alice.user_id}", token=bob.token)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    await homeserver.hs.db.run(lambda conn: conn.execute(
        "UPDATE users SET is_admin = true WHERE user_id = $1", bob.user_id
    ))
    # A server admin (with a token issued since) may look anyone up.
    login = await api.ok("POST", "login", json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "bob"},
        "password": bob.password,
    })
    body = await api.ok("GET", f"admin/whois/{alice.user_id}", token=login["access_token"])
    assert alice.device_id in body["devices"]


async def test_features_not_offered_answer_as_the_spec_says(api: MatrixApi) -> None:
    alice = await api.register("alice")
    ok = {
        "thirdparty/protocols": {}, "thirdparty/location?alias=%23x:localhost": [],
        "thirdparty/user?userid=@x:localhost": [], "voip/turnServer": {},
    }
    for path, expected in ok.items():
        assert await api.ok("GET", path, token=alice.token) == expected, path
    refused = {
        ("GET", "thirdparty/protocol/irc"): (404, "M_NOT_FOUND"),
        ("GET", "thirdparty/location/irc"): (404, "M_NOT_FOUND"),
        ("GET", "thirdparty/user/irc"): (404, "M_NOT_FOUND"),
        ("POST", "account/3pid/add"): (403, "M_FORBIDDEN"),
        ("POST", "account/3pid/delete"): (403, "M_FORBIDDEN"),
        ("POST", "register/email/requestToken"): (403, "M_THREEPID_DENIED"),
        ("POST", "account/password/msisdn/requestToken"): (403, "M_THREEPID_DENIED"),
        ("PUT", f"directory/list/appservice/irc/!r:{alice.user_id.split(':')[1]}"):
            (403, "M_FORBIDDEN"),
        ("GET", "login/sso/redirect?redirectUrl=https://x.org"): (404, "M_NOT_FOUND"),
    }
    for (method, path), expected in refused.items():
        status, body = await api.request(
            method, path, json={} if method != "GET" else None, token=alice.token
        )
        assert (status, body["errcode"]) == expected, path


async def add_child(api: MatrixApi, token: str, space: str, child: str, **content: Any) -> None:
    await api.ok("PUT", f"rooms/{space}/state/m.space.child/{child}",
                 json={"via": ["localhost"], **content}, token=token)


async def test_space_hierarchy(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    space = await api.create_room(alice, preset="public_chat", name="Space",
                                  creation_content={"type": "m.space"})
    sub = await api.create_room(alice, preset="public_chat", name="Sub",
                                creation_content={"type": "m.space"})
    first = await api.create_room(alice, preset="public_chat", name="First")
    second = await api.create_room(alice, preset="public_chat", name="Second")
    deep = await api.create_room(alice, preset="public_chat", name="Deep")
    secret = await api.create_room(alice, name="Secret")  # private: bob may not see it
    await add_child(api, alice.token, space, second, order="b")
    await add_child(api, alice.token, space, first, order="a", suggested=True)
    await add_child(api, alice.token, space, sub, order="c")
    await add_child(api, alice.token, space, secret, order="d")
    await add_child(api, alice.token, sub, deep)
    await add_child(api, alice.token, sub, space)  # a loop is walked once

    path = f"/_matrix/client/v1/rooms/{space}/hierarchy"
    body = await api.ok("GET", path, token=bob.token)
    validate_response("space_hierarchy.yaml", "/rooms/{roomId}/hierarchy", "get", 200, body)
    assert [r["room_id"] for r in body["rooms"]] == [space, first, second, sub, deep]
    root = body["rooms"][0]
    assert root["room_type"] == "m.space" and root["name"] == "Space"
    assert [e["state_key"] for e in root["children_state"]] == [first, second, sub, secret]

    mine = await api.ok("GET", path, token=alice.token)
    assert secret in [r["room_id"] for r in mine["rooms"]]

    shallow = await api.ok("GET", path, token=bob.token, params={"max_depth": "1"})
    assert deep not in [r["room_id"] for r in shallow["rooms"]]
    suggested = await api.ok("GET", path, token=bob.token,
                             params={"suggested_only": "true"})
    assert [r["room_id"] for r in suggested["rooms"]] == [space, first]

    page = await api.ok("GET", path, token=bob.token, params={"limit": "2"})
    assert [r["room_id"] for r in page["rooms"]] == [space, first]
    rest = await api.ok("GET", path, token=bob.token,
                        params={"limit": "10", "from": page["next_batch"]})
    assert [r["room_id"] for r in rest["rooms"]] == [second, sub, deep]
    assert "next_batch" not in rest
    for params in ({"from": page["next_batch"], "max_depth": "1"}, {"from": "garbage"},
                   {"suggested_only": "yes"}):
        status, error = await api.request("GET", path, token=bob.token, params=params)
        assert (status, error["errcode"]) == (400, "M_INVALID_PARAM"), params

    status, error = await api.request(
        "GET", f"/_matrix/client/v1/rooms/{secret}/hierarchy", token=bob.token
    )
    assert (status, error["errcode"]) == (403, "M_FORBIDDEN")


async def test_registration_token_validity(api: MatrixApi) -> None:
    body = await api.ok("GET", "/_matrix/client/v1/register/m.login.registration_token/validity",
                        params={"token": "anything"})
    assert body == {"valid": False}


async def test_relations(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room_id = await api.create_room(alice)
    parent = await api.send_message(alice, room_id, "parent")

    async def relate(txn: str, rel_type: str, event_type: str = "m.room.message") -> str:
        content: dict[str, Any] = {"m.relates_to": {"rel_type": rel_type, "event_id": parent}}
        if rel_type == "m.annotation":
            content["m.relates_to"]["key"] = "👍"
        else:
            content |= {"msgtype": "m.text", "body": txn}
        body = await api.ok("PUT", f"rooms/{room_id}/send/{event_type}/{txn}", json=content,
                            token=alice.token)
        event_id: str = body["event_id"]
        return event_id

    thread = [await relate(f"rel{i}", "m.thread") for i in range(3)]
    reaction = await relate("react", "m.annotation", "m.reaction")
    await api.send_message(alice, room_id, "unrelated")

    base = f"/_matrix/client/v1/rooms/{room_id}/relations/{parent}"
    body = await api.ok("GET", base, token=alice.token)
    validate_response("relations.yaml", "/rooms/{roomId}/relations/{eventId}", "get", 200, body)
    assert [e["event_id"] for e in body["chunk"]] == [reaction, *reversed(thread)]
    only_thread = await api.ok("GET", base + "/m.thread", token=alice.token)
    assert [e["event_id"] for e in only_thread["chunk"]] == list(reversed(thread))
    reactions = await api.ok("GET", base + "/m.annotation/m.reaction", token=alice.token)
    assert [e["event_id"] for e in reactions["chunk"]] == [reaction]

    first = await api.ok("GET", base + "/m.thread", token=alice.token, params={"limit": "2"})
    assert [e["event_id"] for e in first["chunk"]] == [thread[2], thread[1]]
    rest = await api.ok("GET", base + "/m.thread", token=alice.token,
                        params={"limit": "2", "from": first["next_batch"]})
    assert [e["event_id"] for e in rest["chunk"]] == [thread[0]]
    forwards = await api.ok("GET", base + "/m.thread", token=alice.token, params={"dir": "f"})
    assert [e["event_id"] for e in forwards["chunk"]] == thread

    for token, path, expected in (
        (bob.token, base, (404, "M_NOT_FOUND")),  # not in the room: the parent isn't there
        (alice.token, f"/_matrix/client/v1/rooms/{room_id}/relations/$nothere",
         (404, "M_NOT_FOUND")),
    ):
        status, error = await api.request("GET", path, token=token)
        assert (status, error["errcode"]) == expected
    for params in ({"dir": "x"}, {"from": "garbage"}, {"recurse": "1"}):
        status, error = await api.request("GET", base, token=alice.token, params=params)
        assert (status, error["errcode"]) == (400, "M_INVALID_PARAM"), params


async def test_threads(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room_id = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room_id)
    roots = [await api.send_message(alice, room_id, f"root {i}") for i in range(3)]

    async def reply(user: Any, root: str, txn: str) -> str:
        body = await api.ok("PUT", f"rooms/{room_id}/send/m.room.message/{txn}", json={
            "msgtype": "m.text", "body": txn,
            "m.relates_to": {"rel_type": "m.thread", "event_id": root},
        }, token=user.token)
        event_id: str = body["event_id"]
        return event_id

    await reply(alice, roots[0], "reply-a")
    await reply(bob, roots[1], "reply-b")
    latest = await reply(alice, roots[0], "reply-c")  # thread 0 is now the most recent

    path = f"/_matrix/client/v1/rooms/{room_id}/threads"
    body = await api.ok("GET", path, token=bob.token)
    validate_response("threads_list.yaml", "/rooms/{roomId}/threads", "get", 200, body)
    assert [e["event_id"] for e in body["chunk"]] == [roots[0], roots[1]]
    thread = body["chunk"][0]["unsigned"]["m.relations"]["m.thread"]
    assert thread["latest_event"]["event_id"] == latest
    assert (thread["count"], thread["current_user_participated"]) == (2, False)

    mine = await api.ok("GET", path, token=bob.token, params={"include": "participated"})
    assert [e["event_id"] for e in mine["chunk"]] == [roots[1]]
    first = await api.ok("GET", path, token=bob.token, params={"limit": "1"})
    rest = await api.ok("GET", path, token=bob.token, params={"from": first["next_batch"]})
    assert [e["event_id"] for e in first["chunk"] + rest["chunk"]] == [roots[0], roots[1]]
    # The participated list is filtered before paging: a page of one is Bob's thread, not an
    # empty page for the newer thread he is not in. Bob took part in his own root's thread too.
    bobs = await api.send_message(bob, room_id, "Bob's root")
    await reply(alice, bobs, "reply-d")
    pages: list[list[str]] = []
    params = {"include": "participated", "limit": "1"}
    while True:
        page = await api.ok("GET", path, token=bob.token, params=params)
        pages.append([e["event_id"] for e in page["chunk"]])
        if "next_batch" not in page:
            break
        params = {**params, "from": page["next_batch"]}
    assert pages[:2] == [[bobs], [roots[1]]] and not any(pages[2:])

    outsider = await api.register("carol")
    private = await api.create_room(alice)
    status, error = await api.request(
        "GET", f"/_matrix/client/v1/rooms/{private}/threads", token=outsider.token
    )
    assert (status, error["errcode"]) == (403, "M_FORBIDDEN")
    for params in ({"include": "mine"}, {"from": "garbage"}):
        status, error = await api.request("GET", path, token=bob.token, params=params)
        assert (status, error["errcode"]) == (400, "M_INVALID_PARAM"), params


async def test_timestamp_to_event(api: MatrixApi, homeserver: RunningServer) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    room_id = await api.create_room(alice)
    events = [await api.send_message(alice, room_id, f"m{i}") for i in range(3)]
    times = await homeserver.hs.db.run(lambda conn: conn.fetch(
        "SELECT event_id, origin_server_ts FROM events WHERE event_id = ANY($1)", events
    ))
    ts = {r["event_id"]: r["origin_server_ts"] for r in times}
    path = f"/_matrix/client/v1/rooms/{room_id}/timestamp_to_event"
    body = await api.ok("GET", path, token=alice.token,
                        params={"ts": str(ts[events[1]]), "dir": "b"})
    validate_response("room_event_by_timestamp.yaml", "/rooms/{roomId}/timestamp_to_event",
                      "get", 200, body)
    assert ts[body["event_id"]] == ts[events[1]] and body["origin_server_ts"] == ts[events[1]]
    later = await api.ok("GET", path, token=alice.token,
                         params={"ts": str(ts[events[2]] + 1), "dir": "b"})
    assert later["event_id"] == events[2]
    status, error = await api.request("GET", path, token=alice.token,
                                      params={"ts": str(ts[events[2]] + 1), "dir": "f"})
    assert (status, error["errcode"]) == (404, "M_NOT_FOUND")
    status, error = await api.request("GET", path, token=bob.token,
                                      params={"ts": "0", "dir": "f"})
    assert (status, error["errcode"]) == (403, "M_FORBIDDEN")
    for params in ({"ts": "x", "dir": "f"}, {"ts": "1", "dir": "up"}):
        status, error = await api.request("GET", path, token=alice.token, params=params)
        assert (status, error["errcode"]) == (400, "M_INVALID_PARAM"), params


async def test_room_summary(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    public = await api.create_room(alice, preset="public_chat", name="Lobby",
                                   room_alias_name="lobby")
    private = await api.create_room(alice, name="Secret")
    body = await api.ok("GET", "/_matrix/client/v1/room_summary/%23lobby:localhost",
                        token=alice.token)
    validate_response("room_summary.yaml", "/room_summary/{roomIdOrAlias}", "get", 200, body)
    assert (body["room_id"], body["name"], body["membership"]) == (public, "Lobby", "join")
    assert body["num_joined_members"] == 1 and "room_version" in body
    anonymous = await api.ok("GET", f"/_matrix/client/v1/room_summary/{public}")
    assert anonymous["room_id"] == public and "membership" not in anonymous
    status, error = await api.request("GET", f"/_matrix/client/v1/room_summary/{private}",
                                      token=bob.token)
    assert (status, error["errcode"]) == (404, "M_NOT_FOUND")
    mine = await api.ok("GET", f"/_matrix/client/v1/room_summary/{private}", token=alice.token)
    assert mine["encryption"] == "m.megolm.v1.aes-sha2"


async def test_delete_profile_field(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    await api.ok("PUT", f"profile/{alice.user_id}/displayname", json={"displayname": "Alice"},
                 token=alice.token)
    status, error = await api.request("DELETE", f"profile/{alice.user_id}/displayname",
                                      token=bob.token)
    assert (status, error["errcode"]) == (403, "M_FORBIDDEN")
    assert await api.ok("DELETE", f"profile/{alice.user_id}/displayname",
                        token=alice.token) == {}
    profile = await api.ok("GET", f"profile/{alice.user_id}", token=alice.token)
    assert "displayname" not in profile


async def test_support_and_appservice_ping_answers(api: MatrixApi) -> None:
    alice = await api.register("alice")
    status, body = await api.request("GET", "/.well-known/matrix/support")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await api.request("POST", "/_matrix/client/v1/appservice/irc/ping",
                                     json={}, token=alice.token)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_page_tokens_past_the_largest_position_are_bad_params(api: MatrixApi) -> None:
    """Relations and threads tokens are digits a client can make as long as it likes: past
    the largest stream position they are 400, not a database error."""
    alice = await api.register("alice")
    room_id = await api.create_room(alice)
    parent = await api.send_message(alice, room_id, "parent")
    huge = "9" * 25
    for path, token in (
        (f"/_matrix/client/v1/rooms/{quote(room_id)}/relations/{quote(parent)}", f"r{huge}"),
        (f"/_matrix/client/v1/rooms/{quote(room_id)}/threads", f"t{huge}"),
    ):
        status, body = await api.request("GET", path, token=alice.token, params={"from": token})
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), (path, body)
