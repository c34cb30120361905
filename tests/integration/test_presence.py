"""Presence: GET/PUT /presence/{userId}/status, presence in /sync, set_presence, going idle."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from tests.bad_input import assert_sane, bodies, collect, send_body
from tests.conftest import MakeServer
from tests.helpers import MatrixApi, User, validate_response


def status_path(user: User) -> str:
    return f"presence/{user.user_id}/status"


def presence_of(body: dict[str, Any], user: User) -> list[dict[str, Any]]:
    return [e["content"] for e in body["presence"]["events"] if e["sender"] == user.user_id]


async def sharing(api: MatrixApi) -> tuple[User, User, User]:
    """alice and bob share a room; carol shares none with them."""
    alice, bob, carol = [await api.register(n) for n in ("alice", "bob", "carol")]
    room = await api.create_room(alice, preset="public_chat")
    await api.join(bob, room)
    return alice, bob, carol


async def test_set_and_get_own_presence(api: MatrixApi) -> None:
    alice = await api.register("alice")
    body = await api.ok("GET", status_path(alice), token=alice.token)
    validate_response("presence.yaml", "/presence/{userId}/status", "get", 200, body)
    assert body["presence"] == "offline"
    put = await api.ok(
        "PUT", status_path(alice), json={"presence": "unavailable", "status_msg": "lunch"},
        token=alice.token,
    )
    validate_response("presence.yaml", "/presence/{userId}/status", "put", 200, put)
    body = await api.ok("GET", status_path(alice), token=alice.token)
    validate_response("presence.yaml", "/presence/{userId}/status", "get", 200, body)
    assert body["presence"] == "unavailable"
    assert body["status_msg"] == "lunch"
    assert body["currently_active"] is False
    assert 0 <= body["last_active_ago"] < 60_000
    await api.ok("PUT", status_path(alice), json={"presence": "online"}, token=alice.token)
    body = await api.ok("GET", status_path(alice), token=alice.token)
    assert (body["presence"], body["currently_active"]) == ("online", True)
    assert "status_msg" not in body


async def test_presence_errors(api: MatrixApi) -> None:
    alice, bob, carol = await sharing(api)
    cases = [
        ({"presence": "busy"}, alice, alice, 400, "M_INVALID_PARAM"),
        ({"status_msg": "x"}, alice, alice, 400, "M_MISSING_PARAM"),
        ({"presence": 1}, alice, alice, 400, "M_BAD_JSON"),
        ({"presence": "online", "status_msg": 5}, alice, alice, 400, "M_BAD_JSON"),
        ({"presence": "online", "status_msg": "x" * 2000}, alice, alice, 400, "M_BAD_JSON"),
        ({"presence": "online"}, alice, bob, 403, "M_FORBIDDEN"),
    ]
    for json, caller, target, status, errcode in cases:
        got, body = await api.request("PUT", status_path(target), json=json, token=caller.token)
        assert (got, body["errcode"]) == (status, errcode), json
    got, body = await api.request(
        "PUT", status_path(alice), raw=b"{nope", token=alice.token,
        headers={"Content-Type": "application/json"},
    )
    assert (got, body["errcode"]) == (400, "M_NOT_JSON")
    got, body = await api.request("PUT", status_path(alice), json={"presence": "online"})
    assert (got, body["errcode"]) == (401, "M_MISSING_TOKEN")
    got, body = await api.request("GET", "presence/not-a-user/status", token=alice.token)
    assert (got, body["errcode"]) == (400, "M_INVALID_PARAM")
    # Presence is visible to users sharing a room, and to nobody else.
    assert (await api.request("GET", status_path(bob), token=alice.token))[0] == 200
    got, body = await api.request("GET", status_path(bob), token=carol.token)
    assert (got, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_presence_in_sync_only_for_users_sharing_a_room(api: MatrixApi) -> None:
    alice, bob, carol = await sharing(api)
    alice_since = (await api.sync(alice, set_presence="offline"))["next_batch"]
    carol_since = (await api.sync(carol, set_presence="offline"))["next_batch"]
    await api.ok(
        "PUT", status_path(bob), json={"presence": "online", "status_msg": "hi"},
        token=bob.token,
    )
    body = await api.sync(alice, since=alice_since, set_presence="offline")
    validate_response("sync.yaml", "/sync", "get", 200, body)
    [content] = presence_of(body, bob)
    assert (content["presence"], content["status_msg"]) == ("online", "hi")
    assert content["currently_active"] is True
    body = await api.sync(carol, since=carol_since, timeout=0, set_presence="offline")
    assert presence_of(body, bob) == []
    # An initial sync carries the current presence of room-mates too.
    assert presence_of(await api.sync(alice, set_presence="offline"), bob)[0]["presence"] == (
        "online"
    )


async def test_presence_change_wakes_a_long_poll(api: MatrixApi) -> None:
    alice, bob, _ = await sharing(api)
    since = (await api.sync(alice))["next_batch"]
    poll = asyncio.create_task(api.sync(alice, since=since, timeout=30_000))
    await api.ok("PUT", status_path(bob), json={"presence": "unavailable"}, token=bob.token)
    body = await asyncio.wait_for(poll, 20)
    assert [c["presence"] for c in presence_of(body, bob)] == ["unavailable"]


async def test_set_presence_on_sync(api: MatrixApi) -> None:
    alice = await api.register("alice")
    await api.sync(alice, set_presence="offline")
    assert (await api.ok("GET", status_path(alice), token=alice.token))["presence"] == "offline"
    await api.sync(alice, set_presence="unavailable")
    assert (await api.ok("GET", status_path(alice), token=alice.token))["presence"] == (
        "unavailable"
    )
    await api.sync(alice)  # online unless the client says otherwise
    body = await api.ok("GET", status_path(alice), token=alice.token)
    assert (body["presence"], body["currently_active"]) == ("online", True)
    status, body = await api.request(
        "GET", "sync", token=alice.token, params={"set_presence": "away"}
    )
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")


async def test_idle_users_go_offline_and_room_mates_hear_it(
    make_homeserver: MakeServer, http: aiohttp.ClientSession
) -> None:
    server = await make_homeserver(overrides={"presence.idle_timeout_ms": 300})
    api = MatrixApi(server.url, http)
    alice, bob, _ = await sharing(api)
    await api.ok("PUT", status_path(bob), json={"presence": "online"}, token=bob.token)
    since = (await api.sync(alice))["next_batch"]
    seen: list[str] = []
    for _ in range(20):  # each long-poll returns when some presence changes
        body = await api.sync(alice, since=since, timeout=5_000)
        since = body["next_batch"]
        seen += [c["presence"] for c in presence_of(body, bob)]
        if "offline" in seen:
            break
    assert seen[-1] == "offline"
    assert (await api.ok("GET", status_path(bob), token=alice.token))["presence"] == "offline"


async def test_put_presence_survives_arbitrary_bodies(api: MatrixApi) -> None:
    alice = await api.register("alice")
    for kind, value in collect(bodies):
        status, body = await send_body(api, "PUT", status_path(alice), alice.token, kind, value)
        assert_sane(status, body, value)


async def test_own_presence_and_presence_of_newly_shared_rooms(api: MatrixApi) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    # A user in no room still sees their own presence.
    body = await api.sync(alice)
    assert [c["presence"] for c in presence_of(body, alice)] == ["online"]
    await api.ok(
        "PUT", status_path(alice), json={"presence": "online", "status_msg": "here"},
        token=alice.token,
    )
    since = body["next_batch"]
    body = await api.sync(alice, since=since)
    assert [c.get("status_msg") for c in presence_of(body, alice)] == ["here"]

    # bob's presence is older than alice's token; joining his room brings it, and alice's
    # presence reaches bob when she joins.
    await api.sync(bob)
    bob_since = (await api.sync(bob))["next_batch"]
    room_id = await api.create_room(bob, preset="public_chat")
    since = (await api.sync(alice))["next_batch"]
    await api.join(alice, room_id)
    body = await api.sync(alice, since=since)
    assert [c["presence"] for c in presence_of(body, bob)] == ["online"]
    body = await api.sync(alice, since=body["next_batch"])
    assert presence_of(body, bob) == []  # once
    body = await api.sync(bob, since=bob_since)
    assert [c.get("status_msg") for c in presence_of(body, alice)] == ["here"]
